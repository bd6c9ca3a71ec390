// The queue of offline uses on real files: entries written whole and private, each reported once
// by whichever reporter claims it, none lost when a reporter is SIGKILLed holding claims or
// when the vault refuses midway; hand-edited entries are dropped, never sent.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FallbackError } from '../../../src/errors.js';
import { processIsAlive } from '../../../src/inject/placement.js';
import { type OfflineUse, UseQueue } from '../../../src/fallback/use-queue.js';
import { ROOT, waitForLine } from '../../helpers/cli.js';

const uid = process.getuid?.() ?? -1;
let dir: string;
let queue: UseQueue;
const use = (n: number): OfflineUse => ({ subject: `job-${n}`, environment: 'prod', keys: ['DB_URL'], used_at: new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString() });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-queue-unit-'));
  queue = new UseQueue(join(dir, 'job.bin.uses'), uid);
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function drain(q: UseQueue): Promise<string[]> {
  const sent: string[] = [];
  const outcome = await q.report(async (entry) => void sent.push(entry.subject), processIsAlive);
  expect(outcome.failure).toBeUndefined();
  return sent;
}

describe('the offline-use queue', () => {
  it('keeps each use in its own 0600 file in a 0700 directory and reports them oldest first, once', async () => {
    for (const n of [3, 1, 2]) await queue.add(use(n), new Date(Date.UTC(2030, 0, 1, 0, 0, n)));
    expect(lstatSync(queue.dir).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(queue.dir)) expect(lstatSync(join(queue.dir, name)).mode & 0o777).toBe(0o600);
    expect(await queue.count()).toBe(3);
    expect(await drain(queue)).toEqual(['job-1', 'job-2', 'job-3']);
    expect(readdirSync(queue.dir)).toEqual([]);
    expect(await drain(queue)).toEqual([]);
  });

  it('stops at the first refusal and keeps that entry and the rest', async () => {
    for (const n of [1, 2, 3]) await queue.add(use(n), new Date(Date.UTC(2030, 0, 1, 0, 0, n)));
    let calls = 0;
    const outcome = await queue.report(async () => {
      if (++calls === 2) throw Object.assign(new Error('down'), { code: 'RWS_VAULT_UNREACHABLE' });
    }, processIsAlive);
    expect(outcome).toMatchObject({ sent: 1, left: 2 });
    expect(await drain(queue)).toEqual(['job-2', 'job-3']);
  });

  it('removes an entry the vault refuses for good (400, 403, 404) and goes on with the rest', async () => {
    for (const n of [1, 2, 3]) await queue.add(use(n), new Date(Date.UTC(2030, 0, 1, 0, 0, n)));
    const sent: string[] = [];
    const forGood = (failure: unknown): boolean => (failure as { status?: number }).status === 400;
    const outcome = await queue.report(async (entry) => {
      if (entry.subject === 'job-1') throw Object.assign(new Error('too old'), { code: 'RWS_VAULT_BAD_REQUEST', status: 400 });
      sent.push(entry.subject);
    }, processIsAlive, forGood);
    expect(outcome).toMatchObject({ sent: 2, refused: 1, left: 0 });
    expect(outcome.failure).toBeUndefined();
    expect(sent).toEqual(['job-2', 'job-3']);
    expect(await queue.count()).toBe(0);
  });

  it("sweeps the temp file of a writer killed before its rename (no use in it: its run never began), and leaves a live writer's", async () => {
    await queue.add(use(1), new Date(Date.UTC(2030, 0, 1, 0, 0, 1)));
    const gone = spawnSync('true').pid;
    const writing = spawn('sleep', ['30']);
    try {
      const entry = '1893456000000-1-0123456789ab.json';
      const left = `.${entry}.${gone}.aaaaaaaaaaaa.tmp`;
      const live = `.${entry}.${writing.pid}.bbbbbbbbbbbb.tmp`;
      for (const name of [left, live]) writeFileSync(join(queue.dir, name), '{"subject":"half', { mode: 0o600 });
      expect(await drain(queue)).toEqual(['job-1']);
      expect(readdirSync(queue.dir)).toEqual([live]);
    } finally {
      writing.kill('SIGKILL');
    }
  });

  it('drops hand-edited entries without sending them', async () => {
    await queue.add(use(1), new Date(Date.UTC(2030, 0, 1)));
    const bad: Array<[string, string]> = [
      ['1893456000000-1-aaaaaaaaaaaa.json', '{"subject":"x"'],
      ['1893456000001-1-bbbbbbbbbbbb.json', JSON.stringify({ ...use(2), keys: ['NOT A NAME'] })],
      ['1893456000002-1-cccccccccccc.json', JSON.stringify({ ...use(3), value: 'leaked' })],
      ['1893456000003-1-dddddddddddd.json', JSON.stringify({ ...use(4), subject: 'a\u0007b' })],
      // Half an emoji: the vault would refuse it (400), so it is never sent.
      ['1893456000005-1-ffffffffffff.json', JSON.stringify({ ...use(6), subject: `${'s'.repeat(200)}\u{1F600}`.slice(0, 201) })],
    ];
    for (const [name, text] of bad) writeFileSync(join(queue.dir, name), text, { mode: 0o600 });
    writeFileSync(join(queue.dir, '1893456000004-1-eeeeeeeeeeee.json'), JSON.stringify(use(5)), { mode: 0o644 });
    chmodSync(join(queue.dir, '1893456000004-1-eeeeeeeeeeee.json'), 0o644);
    const sent: string[] = [];
    const outcome = await queue.report(async (entry) => void sent.push(entry.subject), processIsAlive);
    expect(sent).toEqual(['job-1']);
    expect(outcome).toMatchObject({ sent: 1, dropped: 6 });
  });

  describe('its directory, checked before the queue is read', () => {
    async function refused(q: UseQueue = queue): Promise<FallbackError> {
      const sent: string[] = [];
      const error = await q.report(async (entry) => void sent.push(entry.subject), processIsAlive).then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(FallbackError);
      expect((error as FallbackError).code).toBe('RWS_FALLBACK_UNSAFE');
      expect(sent).toEqual([]);
      return error as FallbackError;
    }

    it('open to group or others: nothing sent, nothing claimed or removed, the chmod 700 said; add narrows it back', async () => {
      for (const n of [1, 2]) await queue.add(use(n), new Date(Date.UTC(2030, 0, 1, 0, 0, n)));
      const entries = readdirSync(queue.dir).sort();
      for (const mode of [0o755, 0o770, 0o701]) {
        chmodSync(queue.dir, mode);
        const error = await refused();
        expect(error.message).toBe(`the offline-use queue ${queue.dir} is refused: it is open to group or others (mode ${mode.toString(8)})`);
        expect(error.hint).toBe(`chmod 700 ${queue.dir}: uses are queued 0600 in a 0700 directory (a run from the copy narrows it too)`);
        expect(readdirSync(queue.dir).sort()).toEqual(entries);
      }
      await queue.add(use(3), new Date(Date.UTC(2030, 0, 1, 0, 0, 3)));
      expect(lstatSync(queue.dir).mode & 0o777).toBe(0o700);
      expect(await drain(queue)).toEqual(['job-1', 'job-2', 'job-3']);
    });

    it('a link in its place is refused, never followed: the uses it points at are not sent', async () => {
      const elsewhere = new UseQueue(join(dir, 'other.bin.uses'), uid);
      await elsewhere.add(use(1), new Date(Date.UTC(2030, 0, 1)));
      symlinkSync(elsewhere.dir, queue.dir);
      expect((await refused()).message).toBe(`the offline-use queue ${queue.dir} is refused: it is a symbolic link, not a directory`);
      // A use is not added through it either, and says so by the same code.
      const adding = await queue.add(use(2), new Date(Date.UTC(2030, 0, 2))).then(() => undefined, (caught: unknown) => caught);
      expect(adding).toMatchObject({ code: 'RWS_FALLBACK_UNSAFE', hint: `rm ${queue.dir} (a link goes without its target); a run from the copy makes it again` });
      expect(await elsewhere.count()).toBe(1);
    });

    it.skipIf(uid !== 0)("another user's is theirs, no chown offered; root's, as a user finds it after a sudo that kept their HOME: the chown -R that gives it back", async () => {
      await queue.add(use(1), new Date(Date.UTC(2030, 0, 1)));
      chownSync(queue.dir, 65534, 65534);
      const theirs = await refused();
      expect(theirs.message).toBe(`the offline-use queue ${queue.dir} is refused: it is owned by uid 65534, not by you (uid 0)`);
      expect(theirs.hint).not.toContain('chown');
      chownSync(queue.dir, 0, 0);
      expect((await refused(new UseQueue(queue.dir, 65534))).hint).toBe(`root made it (sudo without -H keeps your HOME): chown -R 65534 ${queue.dir} as root, then run again`);
      expect(await drain(queue)).toEqual(['job-1']);
    });

    it.skipIf(uid !== 0)('beside a --fallback=PATH copy, another user\'s or root\'s: the hint is of that PATH, not of XDG_STATE_HOME, which changes nothing there', async () => {
      const chosen = new UseQueue(join(dir, 'copy.bin.0123456789ab.uses'), uid, 'chosen');
      await chosen.add(use(1), new Date(Date.UTC(2030, 0, 1)));
      chownSync(chosen.dir, 65534, 65534);
      expect((await refused(chosen)).hint).toBe("it is uid 65534's: run as that user, or give --fallback=PATH in a directory of yours; do not remove it");
      const adding = await chosen.add(use(2), new Date(Date.UTC(2030, 0, 2))).then(() => undefined, (caught: unknown) => caught);
      expect(adding).toMatchObject({ code: 'RWS_FALLBACK_UNSAFE', hint: "it is uid 65534's: run as that user, or give --fallback=PATH in a directory of yours; do not remove it" });
      chownSync(chosen.dir, 0, 0);
      expect((await refused(new UseQueue(chosen.dir, 65534, 'chosen'))).hint).toBe(`root made it (a run as root with this --fallback=PATH): sudo chown -R 65534 ${chosen.dir}, then run again`);
    });

    it('a missing one holds nothing to report', async () => {
      expect(await drain(queue)).toEqual([]);
    });
  });

  it('loses nothing when reporters race, or one is SIGKILLed holding its claims', async () => {
    for (let n = 0; n < 30; n++) await queue.add(use(n), new Date(Date.UTC(2030, 0, 1, 0, 0, n)));
    // A reporter in another process claims an entry, then hangs in the send: SIGKILL it there.
    const script = `
      const { UseQueue } = await import(${JSON.stringify(join(ROOT, 'dist/fallback/use-queue.js'))});
      const queue = new UseQueue(${JSON.stringify(queue.dir)}, ${uid});
      await queue.report(async () => { console.log('claimed'); await new Promise(() => {}); }, () => true);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitForLine(child.stdout, 'claimed');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(readdirSync(queue.dir).filter((name) => name.includes('.sending-'))).toHaveLength(1);
    // Two reporters at once, then the claim of the dead one given back: every use exactly once.
    const other = new UseQueue(queue.dir, uid);
    const [a, b] = await Promise.all([drain(queue), drain(other)]);
    const sent = [...a, ...b, ...(await drain(queue))].sort();
    expect(sent).toEqual(Array.from({ length: 30 }, (_, n) => `job-${n}`).sort());
    expect(readdirSync(queue.dir)).toEqual([]);
  });
});
