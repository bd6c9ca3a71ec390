// A database URL's own time limits are taken out of it, named (never their values or any other
// part of the URL), and everything else in it is left exactly as given.
import { describe, expect, it } from 'vitest';
import { envLimits, ignoredLimitsWarning, withoutUrlLimits } from '../../../src/server/state/postgres/time-limits.js';

describe('withoutUrlLimits', () => {
  it('takes out each limit parameter and keeps the rest of the URL as given', () => {
    expect(withoutUrlLimits('postgres://rws:p%40ss@db:5432/rws?sslmode=verify-full&statement_timeout=0&application_name=x&query_timeout=1&connect_timeout=600&idle_in_transaction_session_timeout=0')).toEqual({
      url: 'postgres://rws:p%40ss@db:5432/rws?sslmode=verify-full&application_name=x',
      ignored: ['statement_timeout', 'query_timeout', 'connect_timeout', 'idle_in_transaction_session_timeout'],
    });
    expect(withoutUrlLimits('postgres://rws@db/rws?statement_timeout=0&statement_timeout=9')).toEqual({ url: 'postgres://rws@db/rws', ignored: ['statement_timeout'] });
    // Decoded as node-postgres decodes names.
    expect(withoutUrlLimits('postgres://rws@db/rws?statement%5Ftimeout=0').ignored).toEqual(['statement_timeout']);
    for (const url of ['postgres://rws:pw@db/rws', 'postgres://rws:pw@db/rws?sslmode=require', 'postgresql://rws:pw@/rws?host=/var/run/postgresql', 'postgres://rws:pw@db/rws?lock_timeout=100']) {
      expect(withoutUrlLimits(url)).toEqual({ url, ignored: [] });
    }
  });

  it('reads a name as WHATWG URL does: without tabs or newlines, and the last one without the controls that end the URL', () => {
    // node-postgres would read each of these as the limit itself (an empty one unsets it, and
    // the session then has none): taken out, and named.
    for (const [query, name] of [
      ['statement_timeout\x01', 'statement_timeout'],
      ['sslmode=require&idle_in_transaction_session_timeout\x1f', 'idle_in_transaction_session_timeout'],
      ['statement_time\tout=0', 'statement_timeout'],
      ['query_time\r\nout=0&sslmode=require', 'query_timeout'],
    ] as const) {
      const { url, ignored } = withoutUrlLimits(`postgres://rws:pw@db/rws?${query}`);
      expect({ query, ignored }).toEqual({ query, ignored: [name] });
      expect(url).not.toContain(name.slice(-7));
    }
    expect(withoutUrlLimits(`postgres://rws@db/rws?options=${encodeURIComponent('-c statement_time')}\tout%3D0`).ignored).toEqual(['options (-c statement_timeout)']);
  });

  it('names a limit set in options and leaves options as they are', () => {
    for (const options of ['-c statement_timeout=0', '-cstatement_timeout=0', '--statement-timeout=0', '-c search_path=rws -c STATEMENT_TIMEOUT = 0']) {
      const url = `postgres://rws@db/rws?options=${encodeURIComponent(options)}`;
      expect({ options, result: withoutUrlLimits(url) }).toEqual({ options, result: { url, ignored: ['options (-c statement_timeout)'] } });
    }
    expect(withoutUrlLimits(`postgres://rws@db/rws?options=${encodeURIComponent('-c idle_in_transaction_session_timeout=0')}`).ignored).toEqual(['options (-c idle_in_transaction_session_timeout)']);
    expect(withoutUrlLimits(`postgres://rws@db/rws?options=${encodeURIComponent('-c search_path=rws')}`).ignored).toEqual([]);
  });

  it('reads the query where node-postgres does: after the first ?, before a #', () => {
    expect(withoutUrlLimits('postgres://rws@db/rws?statement_timeout=0#x')).toEqual({ url: 'postgres://rws@db/rws#x', ignored: ['statement_timeout'] });
    expect(withoutUrlLimits('postgres://rws@db/rws#?statement_timeout=0').ignored).toEqual([]);
  });
});

it('the warning names what was ignored, never a value or the password', () => {
  const warning = ignoredLimitsWarning('postgres://rws:hunter2-secret@db/rws?statement_timeout=12345&options=-c%20statement_timeout%3D0');
  expect(warning).toContain('RWS_DATABASE_TIMEOUT_IGNORED');
  expect(warning).toContain("the database URL's statement_timeout, options (-c statement_timeout) are ignored");
  expect(warning).not.toMatch(/hunter2|12345|db\/rws/);
  expect(ignoredLimitsWarning('postgres://rws:pw@db/rws?sslmode=require')).toBeUndefined();
});

describe('envLimits', () => {
  it('names PGCONNECT_TIMEOUT and a limit in PGOPTIONS as node-postgres would read them', () => {
    const url = 'postgres://rws:pw@db/rws';
    expect(envLimits(url, { PGCONNECT_TIMEOUT: '600', PGOPTIONS: '-c search_path=rws --statement-timeout=0 -c statement_timeout=0' })).toEqual(['PGCONNECT_TIMEOUT', 'PGOPTIONS (-c statement_timeout)']);
    // Set but empty, or PGOPTIONS behind the URL's own options: node-postgres reads neither.
    expect(envLimits(url, { PGCONNECT_TIMEOUT: '', PGOPTIONS: '' })).toEqual([]);
    expect(envLimits(`${url}?options=${encodeURIComponent('-c search_path=rws')}`, { PGOPTIONS: '-c statement_timeout=0' })).toEqual([]);
    expect(envLimits(`${url}?options=`, { PGOPTIONS: '-c statement_timeout=0' })).toEqual(['PGOPTIONS (-c statement_timeout)']);
    expect(envLimits(url, { PGOPTIONS: '-c search_path=rws', PGAPPNAME: 'x', PGHOST: 'db' })).toEqual([]);
    expect(envLimits(url, { NODE_PG_FORCE_NATIVE: 'true' })).toEqual(['NODE_PG_FORCE_NATIVE']);
    expect(envLimits(url, { NODE_PG_FORCE_NATIVE: '' })).toEqual([]);
  });

  it('the warning says which came from the URL and which from the environment, never a value', () => {
    const warning = ignoredLimitsWarning('postgres://rws:hunter2-secret@db/rws?query_timeout=12345', { PGCONNECT_TIMEOUT: '67890', PGOPTIONS: '-c statement_timeout=24680' });
    expect(warning).toContain("the database URL's query_timeout and the environment's PGCONNECT_TIMEOUT, PGOPTIONS (-c statement_timeout) are ignored");
    expect(warning).toContain('remove them from the URL and the environment');
    expect(warning).not.toMatch(/hunter2|12345|67890|24680/);
    expect(ignoredLimitsWarning('postgres://rws@db/rws', { PGCONNECT_TIMEOUT: '600' })).toContain("the environment's PGCONNECT_TIMEOUT is ignored");
  });
});
