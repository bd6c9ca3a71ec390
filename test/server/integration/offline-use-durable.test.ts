// A reported offline use is the client's only record of that run until the vault answers: once
// answered 204, the client deletes it. So its row is committed as a mint's is, waiting for the
// WAL's flush, where an unlimited read's row is not. Seen from inside PostgreSQL: a trigger notes
// the commit setting each audit row was written under.
import { beforeAll, expect, it } from 'vitest';
import { call, makeApiKey, token } from '../helpers/server.js';
import { servedOnPostgres } from '../helpers/postgres-serve.js';

const vault = servedOnPostgres({ production: { JOB_A: 'job-a-value' } });
let apiKey: string;

beforeAll(async () => {
  apiKey = (await makeApiKey(vault.store, ['production'], ['JOB_*'], [], vault.env)).key;
});

it('commits a reported offline use durably (synchronous_commit on), an unlimited read not', async () => {
  const url = vault.server.url;
  await vault.sql(`CREATE TABLE commit_modes (event TEXT, mode TEXT);
    CREATE FUNCTION note_mode() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO commit_modes VALUES (NEW.event, current_setting('synchronous_commit')); RETURN NEW; END $$;
    CREATE TRIGGER note_mode AFTER INSERT ON audit FOR EACH ROW EXECUTE FUNCTION note_mode();`);
  try {
    const read = await call(`${url}/api/v1/vault/production/JOB_A`, { auth: await token(vault.server, apiKey, { environment: 'production', key_pattern: 'JOB_A' }) });
    expect(read.status).toBe(200);
    const reported = await call(`${url}/api/v1/fallback/uses`, { auth: apiKey, json: { subject: 'nightly@host', environment: 'production', keys: ['JOB_A'], used_at: new Date(Date.now() - 60_000).toISOString() } });
    expect(reported.status).toBe(204);
    const modes = Object.fromEntries((await vault.sql("SELECT event, mode FROM commit_modes WHERE event IN ('secret.read', 'secret.offline_use')")).rows.map((row) => [row.event, row.mode]));
    expect(modes).toEqual({ 'secret.read': 'off', 'secret.offline_use': 'on' });
  } finally {
    await vault.sql('DROP TRIGGER note_mode ON audit; DROP FUNCTION note_mode(); DROP TABLE commit_modes');
  }
});
