// `secrets-server audit [filters] [--json] [--follow]` and `audit verify`.
import { verifyChain } from '../audit/chain.js';
import { AUDIT_EVENTS, auditJson, type AuditEventName, type AuditQuery, type StoredAuditRow } from '../audit/record.js';
import type { CliIo } from '../cli.js';
import { EXIT_FAILURE, EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveStore } from '../config.js';
import type { SqlStateStore } from '../state/sql/sql-state-store.js';
import { FollowedStateReplacedError, StateReplacedError, StateUnavailableError } from '../state/state-errors.js';
import { ServerUsageError } from '../usage-error.js';
import { readSeen } from '../state/rollback-guard.js';
import type { StorePaths } from '../store/layout.js';
import { openCommandState } from './state-args.js';
import { parseIsoTime } from '../iso-time.js';
import { printable } from '../../printable.js';
import { FollowPosition } from '../audit/follow-position.js';
import { isValidApiKeyId } from '../auth/api-keys.js';
import { isValidEnvironment } from '../store/layout.js';

const FOLLOW_POLL_MS = 500;
/** The longest pause between tries while the state database does not answer. */
const FOLLOW_RETRY_MAX_MS = 10_000;
const PAGE = 1000;

async function open(args: Record<string, unknown>, io: CliIo): Promise<SqlStateStore> {
  return (await openWithPaths(args, io)).state;
}

async function openWithPaths(args: Record<string, unknown>, io: CliIo): Promise<{ paths: StorePaths; state: SqlStateStore }> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  return { paths, state: await openCommandState(paths, args, io) };
}

export function parseAuditQuery(args: Record<string, unknown>): AuditQuery {
  // A follower never stops at --until: past it, it would print nothing, for ever, without a word.
  if (args.follow && args.until !== undefined) throw new ServerUsageError('--until cannot be given with --follow, which streams until it is stopped: list a past period with --since and --until, or follow without --until');
  const limit = args.limit as number;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new ServerUsageError(`Expected --limit to be an integer from 1 to 10000, got ${String(args.limit)}`);
  const time = (flag: 'since' | 'until'): string | undefined => {
    const text = args[flag] as string | undefined;
    if (text === undefined) return undefined;
    const date = parseIsoTime(text);
    if (date === undefined) throw new ServerUsageError(`Expected --${flag} to be an ISO 8601 time such as 2030-01-31T00:00:00Z, got ${text.slice(0, 64)}`);
    return date.toISOString();
  };
  const event = args.event as string | undefined;
  // A misspelt event would match no row: an empty answer that reads as "nothing happened".
  if (event !== undefined && !AUDIT_EVENTS.includes(event as AuditEventName)) {
    throw new ServerUsageError(`Expected --event to be an audit event, got ${printable(event.slice(0, 64))}`, `one of ${AUDIT_EVENTS.join(', ')}`);
  }
  // Likewise a key id or an environment no row can hold, as the admin API's filters refuse them.
  const apiKeyId = args['api-key'] as string | undefined;
  if (apiKeyId !== undefined && !isValidApiKeyId(apiKeyId)) throw new ServerUsageError(`Expected --api-key to be a key id such as ak_0123456789abcdef (apikey list shows them), got ${apiKeyId.slice(0, 64)}`);
  const environment = args.environment as string | undefined;
  if (environment !== undefined && !isValidEnvironment(environment)) throw new ServerUsageError(`Expected --environment to be a name of letters, digits, _ and - (at most 64), got ${environment.slice(0, 64)}`);
  return {
    apiKeyId,
    event,
    outcome: args.outcome as 'success' | 'failure' | undefined,
    environment,
    since: time('since'),
    until: time('until'),
    limit,
  };
}

function text(row: StoredAuditRow): string {
  return printable(line(row));
}

function line(row: StoredAuditRow): string {
  const who = row.api_key_id ?? '-';
  const what = [row.environment, row.keys?.join(',')].filter(Boolean).join(' ');
  return `${row.seq}  ${row.time}  ${row.event}  ${row.outcome} ${row.status}${row.error_code ? ` ${row.error_code}` : ''}  key=${who}  ${row.subject === null ? '' : `subject=${JSON.stringify(row.subject)}  `}${what ? `${what}  ` : ''}client=${row.client}${row.count > 1 ? `  x${row.count}` : ''}`;
}

export async function auditList(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const query = parseAuditQuery(args);
  const state = await open(args, io);
  try {
    // The head first: what is listed is up to it, what is followed comes after it; nothing
    // committed in between falls through.
    const start = await state.auditHead();
    const rows = await state.queryAudit({ ...query, beforeSeq: start.seq + 1 });
    for (const row of rows) io.stdout.write(`${args.json || args.follow ? auditJson(row) : text(row)}\n`);
    if (!args.follow) return EXIT_OK;
    // New rows in seq order, as JSON lines, until the command is stopped.
    let stopped = false;
    const stop = io.untilStopped().then(() => (stopped = true));
    // A stop ends a pause at once, and leaves no timer behind to hold the process up.
    const pause = (ms: number) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      return Promise.race([stop, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
    };
    const position = new FollowPosition(start);
    let retryMs = 0;
    while (!stopped) {
      try {
        await state.checkStorage();
        const head = await state.auditHead();
        const back = await position.rolledBackTo(state, head.seq);
        if (back !== undefined) {
          io.stderr.write(`secrets-server: warning RWS_STATE_ROLLED_BACK: the audit trail went back (the state was restored from an older copy); audit --follow goes on after seq ${back}, and the rows after it are new rows\n`);
        }
        const last = position.seq;
        let more = false;
        if (head.seq > last) {
          const fresh = await state.queryAudit({ ...query, afterSeq: last, beforeSeq: head.seq + 1, ascending: true, limit: PAGE });
          for (const row of fresh) io.stdout.write(`${auditJson(row)}\n`);
          // A full page may leave more before the head: continue from its last row.
          more = fresh.length === PAGE;
          const end = more ? fresh.at(-1) : head;
          if (end !== undefined) position.passed(end.seq, end.hash);
        }
        retryMs = 0;
        if (more) continue;
      } catch (error) {
        // A log shipper's stream outlives a database restart: say so once, then retry from the
        // last row printed (the position moves only past rows written out), so nothing is lost or doubled.
        if (error instanceof StateReplacedError) throw new FollowedStateReplacedError(error, position.seq);
        if (!(error instanceof StateUnavailableError)) throw error;
        if (retryMs === 0) io.stderr.write(`secrets-server: warning RWS_STATE_UNAVAILABLE: the state database does not answer; audit --follow retries (every ${FOLLOW_POLL_MS / 1000} s to ${FOLLOW_RETRY_MAX_MS / 1000} s) and resumes after seq ${position.seq}\n`);
        retryMs = Math.min(Math.max(retryMs * 2, FOLLOW_POLL_MS), FOLLOW_RETRY_MAX_MS);
        await pause(retryMs);
        continue;
      }
      await pause(FOLLOW_POLL_MS);
    }
    return EXIT_OK;
  } finally {
    await state.close();
  }
}

export async function auditVerify(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const { paths, state } = await openWithPaths(args, io);
  try {
    const result = await verifyChain((after) => state.auditAfter(after, PAGE));
    if (result.ok) {
      // A chain is only as good as its anchor: whoever can write the database can recompute every
      // hash after an edit. The newest row this host's servers saw must still be there, unchanged.
      const anchor = (await readSeen(paths.stateSeen))?.[await state.databaseId()];
      if (anchor !== undefined && anchor.seq > 0) {
        const now = anchor.seq <= result.count ? await state.auditHashAt(anchor.seq) : undefined;
        if (now !== anchor.hash) {
          io.stdout.write(`audit chain broken at seq ${anchor.seq}: ${now === undefined ? 'the trail is shorter than' : 'the row differs from'} what this host recorded (${printable(paths.stateSeen)}); the chain was rewritten or rolled back\n`);
          return EXIT_FAILURE;
        }
      }
      io.stdout.write(`audit chain verified: ${result.count} rows, head ${result.head}\n`);
      return EXIT_OK;
    }
    io.stdout.write(`audit chain broken at seq ${result.seq}: ${result.problem} (${result.count} rows before it verified)\n`);
    return EXIT_FAILURE;
  } finally {
    await state.close();
  }
}
