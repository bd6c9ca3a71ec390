// The columns of one row, each read as the type secrets-server writes into it. SQLite keeps
// whatever a hand puts in a column (text in an INTEGER, a BLOB anywhere), and both databases keep
// any text in a TEXT column: a value of another shape refuses the row (RWS_STATE_INVALID, naming
// the table, the row and the column, never the value), so it is never read as something else.
// Times are compared as text in SQL and as instants in code, which agree only on the one form
// `toISOString` writes: `never` in `expires_at` was an expiry neither ever reached, and `Jan 1
// 2025` one the key check reached and the token checks never did.
import { printable } from '../../../printable.js';
import { DamagedRowError } from '../state-errors.js';
import type { Row } from './driver.js';

const INTEGER_TEXT = /^-?[0-9]+$/;
/** 9999-12-31T23:59:59Z: a later date is written `+010000-…` by toISOString, or is no Date at all. */
export const LAST_EPOCH_SECOND = 253_402_300_799;

export class RowValues {
  constructor(
    private readonly row: Row,
    private readonly table: string,
    /** The row's id column, for the message. */
    private readonly idColumn: string,
  ) {}

  text(column: string): string {
    const value = this.row[column];
    if (typeof value !== 'string') throw this.damaged(column, 'is not text');
    return value;
  }

  textOrNull(column: string): string | null {
    return this.row[column] === null || this.row[column] === undefined ? null : this.text(column);
  }

  /** A moment as `Date#toISOString` writes it (UTC, milliseconds), or null. */
  instantOrNull(column: string): string | null {
    const value = this.textOrNull(column);
    if (value !== null && !isInstant(value)) throw this.damaged(column, 'is not a time as secrets-server writes one (such as 2030-01-31T00:00:00.000Z)');
    return value;
  }

  /** A whole number from `min` to `max`; BIGINTs may come as text (node-postgres) or as bigint. */
  integer(column: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.row[column];
    const number = typeof value === 'number' || typeof value === 'bigint' ? Number(value) : typeof value === 'string' && INTEGER_TEXT.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(number) || number < min || number > max) throw this.damaged(column, `is not a whole number from ${min} to ${max}`);
    return number;
  }

  integerOrNull(column: string, min: number, max?: number): number | null {
    return this.row[column] === null || this.row[column] === undefined ? null : this.integer(column, min, max);
  }

  /** Epoch seconds that a Date can hold and an ISO time with a four-digit year can name. */
  epochSeconds(column: string): number {
    return this.integer(column, 0, LAST_EPOCH_SECOND);
  }

  damaged(column: string, problem: string): DamagedRowError {
    const id = this.row[this.idColumn];
    const name = typeof id === 'string' || typeof id === 'number' ? printable(String(id).slice(0, 64)) : `with an unreadable ${this.idColumn}`;
    return new DamagedRowError(this.table, name, `${column} ${problem}`);
  }
}

function isInstant(value: string): boolean {
  const time = Date.parse(value);
  return !Number.isNaN(time) && new Date(time).toISOString() === value;
}
