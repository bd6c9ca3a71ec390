// The PostgreSQL lock session's application_name: ours always whole and first, the URL's own after
// it, cut where PostgreSQL cuts (63 bytes) and never inside a character.
import { expect, it } from 'vitest';
import { sessionName } from '../../../src/server/state/postgres/lock-session.js';

it('keeps ours first and whole, the URL name in parentheses after it, within 63 bytes', () => {
  const ours = 'secrets-server edit pid 4242 on host-1';
  expect(sessionName(ours, undefined)).toBe(ours);
  expect(sessionName(ours, '')).toBe(ours);
  expect(sessionName(ours, 'billing')).toBe(`${ours} (billing)`);
  const long = sessionName(ours, 'x'.repeat(100));
  expect(Buffer.byteLength(long)).toBe(63);
  expect(long.startsWith(`${ours} (`)).toBe(true);
  // A two-byte character across the 63rd byte is dropped whole.
  const cut = sessionName(ours, `${'y'.repeat(63 - ours.length - 3)}é`);
  expect(cut).toBe(`${ours} (${'y'.repeat(63 - ours.length - 3)}`);
});
