// A COMMIT that PostgreSQL takes long to finish, sent when little of the request's time is left.
// Once sent it gets the whole statement timeout: cut short by what was left, a commit the database
// applied would be answered 503 "nothing was served", with its use charged and its row written.
// One that outlasts even that is ended by the server and answered as the database settled it
// (commit-outcome.test.ts has the one a synchronous standby holds, which commits).
import { beforeAll, describe, expect, it } from 'vitest';
import { call, makeApiKey, token } from '../helpers/server.js';
import { servedOnPostgres } from '../helpers/postgres-serve.js';

const vault = servedOnPostgres({ production: { SERVICE_B_KEY: 'b-key-value' } });
let apiKey: string;

beforeAll(async () => {
  apiKey = (await makeApiKey(vault.store, ['production'], ['SERVICE_B_*'], [], vault.env)).key;
});

describe('a slow COMMIT sent late in a request', () => {
  it('is waited for with the whole statement timeout: the applied read is answered 200, as its audit row says', async () => {
    const t = await token(vault.server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 5 });
    const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
    // 3 s in the use's UPDATE (before the COMMIT), and 3 s more in a deferred trigger, which
    // PostgreSQL runs inside the COMMIT: 6 s in all, past the 5 s a commit may wait to be sent.
    await vault.sql(`CREATE FUNCTION slow_step() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
      CREATE TRIGGER slow_use BEFORE UPDATE OF uses ON tokens FOR EACH ROW EXECUTE FUNCTION slow_step();
      CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON audit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_step();`);
    const started = Date.now();
    const reply = await call(`${vault.server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    const took = Date.now() - started;
    await vault.sql('DROP TRIGGER slow_use ON tokens; DROP TRIGGER slow_commit ON audit; DROP FUNCTION slow_step()');
    // The database applied it: one use charged, one success row.
    expect(Number((await vault.sql(`SELECT uses FROM tokens WHERE jti = '${jti}'`)).rows[0]?.uses)).toBe(1);
    const rows = (await vault.sql(`SELECT outcome, status FROM audit WHERE jti = '${jti}' AND event = 'secret.read'`)).rows;
    expect(rows).toEqual([{ outcome: 'success', status: 200 }]);
    // And the answer says the same.
    expect(reply.status).toBe(200);
    expect(reply.body.value).toBe('b-key-value');
    expect(took).toBeGreaterThan(5_500);
  }, 60_000);

  // The audit INSERT goes out with the COMMIT right behind it: once sent, the COMMIT cannot be
  // taken back by closing the connection, so the INSERT's time must not come out of the COMMIT's.
  const slowInsertAndCommit = async (insertSeconds: number, commitSeconds: number) => {
    const t = await token(vault.server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 5 });
    const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
    await vault.sql(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${insertSeconds}); RETURN NEW; END $$;
      CREATE TRIGGER slow_insert BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.jti = '${jti}') EXECUTE FUNCTION slow_insert();
      CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${commitSeconds}); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON audit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.jti = '${jti}') EXECUTE FUNCTION slow_commit();`);
    const started = Date.now();
    const reply = await call(`${vault.server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    const took = Date.now() - started;
    // A COMMIT the server gave up on may still be running: give it time before looking.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await vault.sql('DROP TRIGGER slow_insert ON audit; DROP FUNCTION slow_insert(); DROP TRIGGER slow_commit ON audit; DROP FUNCTION slow_commit()');
    const uses = Number((await vault.sql('SELECT uses FROM tokens WHERE jti = $1', [jti])).rows[0]?.uses);
    const rows = (await vault.sql("SELECT outcome, status FROM audit WHERE jti = $1 AND event = 'secret.read'", [jti])).rows;
    return { status: reply.status, uses, rows, took, jti };
  };

  it('behind a slow audit INSERT (4 s), a slow COMMIT (1.5 s) still has its own time: answered 200, as the database says', async () => {
    const seen = await slowInsertAndCommit(4, 1.5);
    expect(seen).toMatchObject({ status: 200, uses: 1, rows: [{ outcome: 'success', status: 200 }] });
  }, 60_000);

  it('a COMMIT whose deferred trigger runs past its own timeout is ended, never applied later: 503, nothing charged, no row, even once the trigger would have finished', async () => {
    // 14 s in the COMMIT: past its timer (5 s, plus what the write had, at most 5 s more). Left to
    // run, it would apply at 14 s, after the request was answered 503 "nothing was served".
    const started = Date.now();
    const seen = await slowInsertAndCommit(0, 14);
    expect(seen.status).toBe(503);
    expect(seen.took).toBeLessThan(13_500);
    expect(seen).toMatchObject({ uses: 0, rows: [] });
    // Looked at again once the trigger would have ended: still nothing.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 15_000 - (Date.now() - started))));
    expect(Number((await vault.sql('SELECT uses FROM tokens WHERE jti = $1', [seen.jti])).rows[0]?.uses)).toBe(0);
    expect((await vault.sql('SELECT seq FROM audit WHERE jti = $1 AND event = $2', [seen.jti, 'secret.read'])).rows).toEqual([]);
  }, 60_000);

  it('an audit INSERT still running at the deadline is ended by the database: 503, nothing charged, no row, within 10 s', async () => {
    const seen = await slowInsertAndCommit(8, 0);
    expect(seen).toMatchObject({ status: 503, uses: 0, rows: [] });
    expect(seen.took).toBeLessThan(10_000);
  }, 60_000);
});
