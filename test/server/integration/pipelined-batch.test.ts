// With PostgreSQL, a batch of reads sends its statements without waiting on each answer: its
// BEGIN, the uses' UPDATEs and the audit chain's head in one round trip, the audit INSERT with the
// COMMIT in another. A statement failing in the middle must fail the whole batch (nothing charged,
// nothing audited, nothing served), and leave the connection it ran on fit for the next batch.
import { beforeAll, describe, expect, it } from 'vitest';
import { call, cliOk, makeApiKey, token } from '../helpers/server.js';
import { servedOnPostgres } from '../helpers/postgres-serve.js';

const vault = servedOnPostgres({ production: { SERVICE_B_KEY: 'b-key-value' } });
let apiKey: string;

beforeAll(async () => {
  apiKey = (await makeApiKey(vault.store, ['production'], ['SERVICE_B_*'], [], vault.env)).key;
});

const jtiOf = (t: string): string => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
const charged = async (t: string) => Number((await vault.sql('SELECT uses FROM tokens WHERE jti = $1', [jtiOf(t)])).rows[0]?.uses);
const served = async (t: string) =>
  Number((await vault.sql("SELECT COALESCE(SUM(count), 0) AS n FROM audit WHERE jti = $1 AND event = 'secret.read' AND outcome = 'success'", [jtiOf(t)])).rows[0]?.n);
const read = (t: string) => call(`${vault.server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
const mint = (usageLimit?: number) => token(vault.server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', ...(usageLimit === undefined ? {} : { usage_limit: usageLimit }) });

/**
 * With `refuse(jti)` (SQL making the database fail a statement of that token's) in place: 40 reads
 * of the refused token and 40 of a good one, all at once, so that many batches hold both. The
 * refused token's reads all fail; the good one's that shared a batch with one fail with it, the
 * others are served; whatever the split, what is charged and audited is exactly what was served.
 * Then, the refusal gone, 60 reads at once are all served and counted: no connection of the pool
 * was left unfit.
 */
async function expectBatchesFailWhole(refused: string, good: string, refuse: (jti: string) => string, undo: string): Promise<void> {
  await vault.sql(refuse(jtiOf(refused)));
  let goodServed: number;
  try {
    const statuses = (await Promise.all(Array.from({ length: 80 }, (_, i) => read(i % 2 === 0 ? refused : good)))).map((reply) => reply.status);
    expect(new Set(statuses.filter((_, i) => i % 2 === 0))).toEqual(new Set([503]));
    const goodStatuses = statuses.filter((_, i) => i % 2 === 1);
    expect(goodStatuses.every((status) => status === 200 || status === 503)).toBe(true);
    goodServed = goodStatuses.filter((status) => status === 200).length;
    expect(await charged(refused)).toBe(0);
    expect(await served(refused)).toBe(0);
    expect(await charged(good)).toBe(goodServed);
    expect(await served(good)).toBe(goodServed);
  } finally {
    await vault.sql(undo);
  }
  const after = await Promise.all(Array.from({ length: 60 }, () => read(good)));
  expect(after.map((reply) => reply.status)).toEqual(Array.from({ length: 60 }, () => 200));
  expect(await charged(good)).toBe(goodServed + 60);
  expect(await served(good)).toBe(goodServed + 60);
  expect(vault.server.process.exitCode).toBeNull();
  expect(vault.server.stderr()).not.toMatch(/unhandled|RWS_INTERNAL|Warning/i);
}

describe('a read batch whose statements are pipelined', () => {
  it("fails whole when a use's UPDATE fails in the database, with the head read sent behind it", async () => {
    await expectBatchesFailWhole(
      await mint(1000),
      await mint(),
      (jti) => `CREATE FUNCTION refuse_use() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
        CREATE TRIGGER refuse_use BEFORE UPDATE OF uses ON tokens FOR EACH ROW WHEN (OLD.jti = '${jti}') EXECUTE FUNCTION refuse_use();`,
      'DROP TRIGGER refuse_use ON tokens; DROP FUNCTION refuse_use()',
    );
  }, 60_000);

  it('commits nothing when an audit INSERT sent ahead of the COMMIT fails: the COMMIT is a rollback', async () => {
    // The refused token's uses were charged by UPDATEs that had succeeded: rolled back with the batch.
    await expectBatchesFailWhole(
      await mint(),
      await mint(1000),
      (jti) => `CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
        CREATE TRIGGER refuse_row BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.jti = '${jti}') EXECUTE FUNCTION refuse_row();`,
      'DROP TRIGGER refuse_row ON audit; DROP FUNCTION refuse_row()',
    );
    // The chain is whole: every row committed links to the one before it.
    expect(await cliOk(['audit', 'verify', '--store', vault.store.dir], { env: vault.env })).toMatch(/verified/);
  }, 60_000);
});
