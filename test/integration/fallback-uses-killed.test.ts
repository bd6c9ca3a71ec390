// The offline-use queue's promise, "reported twice after a crash, never lost", held to it with
// many processes at once: real --offline runs queue uses while real online runs report them to a
// real secrets-server, and reporters, or the vault itself, are SIGKILLed in the middle of
// reporting. Some reporters are first frozen (SIGSTOP) the moment their claim of an entry is on
// disk, and left frozen while the others work through the queue: the worst point for a claim;
// one is killed so under a shell that cannot reap it yet. Later runs finish the reporting, and the
// server's own audit trail says which uses arrived.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend } from '../server/helpers/backends.js';
import { auditRowsSync, makeApiKey, makeStore, startServer, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { baseEnv, BIN, makeRuntimeDir, removeDir, runBin } from '../helpers/cli.js';
import { parseProcStat } from '../../src/process/proc-stat.js';

/** The vault of the describe block running: its store, its state (RWS_DATABASE_URL for PostgreSQL) and its server. */
let store: TestStore;
let env: Record<string, string>;
let server: RunningServer;
let runtimeDir: string;
const printed: string[] = [];
const keys: string[] = [];
/** Wrappers (or their shells) not yet reaped, so their pids are still theirs: none is left stopped when a test fails. */
const running = new Set<ChildProcess>();

beforeAll(() => {
  runtimeDir = makeRuntimeDir();
});

afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
  for (const key of keys) expect(printed.join('\n')).not.toContain(key);
  if (runtimeDir !== undefined) removeDir(runtimeDir);
});

/** A store and a server on `backend` for the block that calls this. */
function useVault(backend: Backend): void {
  let drop = async () => {};
  beforeAll(async () => {
    ({ env, drop } = await backend.database());
    store = await makeStore({ prod: { JOB_DB_PASSWORD: 'uses-db-secret-1', JOB_API_TOKEN: 'uses-api-secret-2' } });
    server = await startServer(store, [], env);
  }, 60_000);
  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await stopVault();
    await store?.cleanup();
    await drop();
  });
}

async function stopVault(): Promise<void> {
  printed.push(server?.stderr() ?? '');
  await server?.stop('SIGKILL');
}

/** A key and a state directory of its own for each case: its own copy, queue and audit rows. */
interface Job {
  id: string;
  key: string;
  state: string;
}

type Result = { exitCode?: number; stderr: string };

/**
 * A wrapper run as users start it; its pid is the wrapper's own (the bin's sh execs node).
 * `underShell`: as the child of a shell that waits for it, whose pid `child` is then.
 */
function start(job: Job, flags: string[], underShell = false): { child: ChildProcess; done: Promise<Result> } {
  const args = ['-e', 'prod', '-k', 'JOB_*', ...flags, '--', 'true'];
  const env = { XDG_STATE_HOME: job.state, RWS_VAULT_URL: server.url, RWS_API_KEY: job.key };
  const run = underShell
    ? execa('sh', ['-c', '"$@"; status=$?; exit $status', 'sh', BIN, ...args], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, env) })
    : runBin(args, { runtimeDir, env });
  running.add(run);
  const done = run.then((result) => {
    running.delete(run);
    printed.push(String(result.stdout), String(result.stderr));
    return { exitCode: result.exitCode, stderr: String(result.stderr) };
  });
  return { child: run, done };
}

const online = (job: Job) => start(job, ['--fallback']).done;
const subjectOf = (n: number) => `use-${String(n).padStart(3, '0')}`;

/** A new key whose copy a real online run has written. */
async function newJob(): Promise<Job> {
  const made = await makeApiKey(store, ['prod'], ['JOB_*'], [], env);
  keys.push(made.key);
  const job = { ...made, state: join(runtimeDir, `state-${made.id}`) };
  mkdirSync(job.state, { mode: 0o700 });
  const first = await online(job);
  expect(first.exitCode, first.stderr).toBe(0);
  return job;
}

function queueOf(job: Job): string {
  const dir = join(job.state, 'run-with-secrets', 'fallback');
  return join(dir, readdirSync(dir).find((name) => name.endsWith('.uses'))!);
}

/** Runs uses `first` to `first + count - 1`, `parallel` at a time; each must run from the copy and be queued. */
async function queueUses(job: Job, first: number, count: number, parallel: number): Promise<void> {
  let next = first;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < first + count) {
        const result = await start(job, ['--offline', '--subject', subjectOf(next++)]).done;
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).toContain('RWS_FALLBACK_USED');
        expect(result.stderr).not.toContain('RWS_FALLBACK_NOT_RECORDED');
      }
    }),
  );
}

/** Later runs give back the dead reporters' claims and send the rest, 100 at most each; nothing is left, not even a claim. */
async function reportTheRest(job: Job): Promise<void> {
  const queue = queueOf(job);
  for (let later = 0; later < 5 && readdirSync(queue).length > 0; later++) {
    const result = await online(job);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/RWS_FALLBACK_NOT_REPORTED|RWS_FALLBACK_QUEUE_INVALID/);
  }
  expect(readdirSync(queue)).toEqual([]);
}

/** The job's secret.offline_use rows: every use in `expected` audited, none that was not; returns how many came twice. */
function expectAudited(job: Job, expected: string[]): number {
  const rows = auditRowsSync(store.dir, env).filter((row) => row.event === 'secret.offline_use' && row.api_key_id === job.id);
  const subjects = rows.map((row) => /^([\w-]+) \(offline at [^)]+\)$/.exec(String(row.subject))?.[1]);
  expect(expected.filter((subject) => !subjects.includes(subject)), 'uses never audited').toEqual([]);
  expect(subjects.filter((subject) => !expected.includes(subject!)), 'offline_use rows of no queued use').toEqual([]);
  return rows.length - expected.length;
}

/** Calls `onClaim` as a claim (`<entry>.sending-<pid>`) is made or goes: inotify names each rename and removal as it happens. */
function watchClaims(queue: string, onClaim: (pid: number, claim: string) => void): () => void {
  const watcher = watch(queue, (_event, name) => {
    const pid = name === null ? undefined : /\.sending-(\d+)$/.exec(name)?.[1];
    if (pid !== undefined) onClaim(Number(pid), join(queue, name!));
  });
  return () => watcher.close();
}

/** A signal to a wrapper that may have ended meanwhile: false when it had. Never to a reaped one, whose pid may be another's. */
function signal(child: ChildProcess, name: NodeJS.Signals): boolean {
  return child.exitCode === null && child.signalCode === null && child.kill(name);
}

/** A signal to a process the test did not start itself: false when it is gone. */
function signalPid(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

function stateOf(pid: number): string | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
  } catch {
    return undefined;
  }
}

/** A SIGSTOP (sent by `send`) lands a moment after kill() returns: true once it is stopped (T), false if it ended first. */
async function stopNow(pid: number, send: (name: NodeJS.Signals) => boolean): Promise<boolean> {
  if (!send('SIGSTOP')) return false;
  for (;;) {
    const state = stateOf(pid);
    if (state === 'T') return true;
    if (state === undefined || state === 'Z' || state === 'X') return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Frozen holding a claim, then killed; killed as one of its claims is made or goes; left alone. */
type Role = 'stop' | 'kill' | 'none';

interface Reporter {
  child: ChildProcess;
  role: Role;
  /** kill: SIGKILLed at this event of its claims (made or gone; 1 = its first claim), wherever that leaves it. */
  killAt: number;
  events: number;
  freezing: boolean;
  /** stop: the claim it was frozen holding. */
  frozenOn?: string;
  frozen: Promise<void>;
  onFrozen: () => void;
  killed: boolean;
  done: Promise<Result>;
}

function startReporter(job: Job, role: Role): Reporter {
  const { child, done } = start(job, ['--fallback']);
  let onFrozen = () => {};
  const frozen = new Promise<void>((resolve) => (onFrozen = resolve));
  return { child, role, killAt: 1 + Math.floor(Math.random() * 12), events: 0, freezing: false, frozen, onFrozen, killed: false, done };
}

/** A killer's signal lands where the reporter got to: a claim just made, a use being sent, or one just removed. */
function onReporterClaim(reporter: Reporter, claim: string): void {
  if (reporter.killed || reporter.freezing) return;
  reporter.events++;
  if (reporter.role === 'kill' && reporter.events >= reporter.killAt) reporter.killed = signal(reporter.child, 'SIGKILL');
  else if (reporter.role === 'stop' && existsSync(claim)) void freezeOnClaim(reporter, claim);
}

/** Stops `pid` and says whether it holds `claim` still; if not, it is continued, to go on to its next one. */
async function freezeHolding(pid: number, claim: string, send: (name: NodeJS.Signals) => boolean): Promise<boolean> {
  if ((await stopNow(pid, send)) && existsSync(claim)) return true;
  send('SIGCONT');
  return false;
}

async function freezeOnClaim(reporter: Reporter, claim: string): Promise<void> {
  reporter.freezing = true;
  if (await freezeHolding(reporter.child.pid!, claim, (name) => signal(reporter.child, name))) {
    reporter.frozenOn = claim;
    return reporter.onFrozen();
  }
  reporter.freezing = false;
}

describe.each(BACKENDS)('the offline-use queue under SIGKILL, the vault on $name', (backend) => {
  useVault(backend);

  /** Queued before any reporter starts: more than one run reports (100), so no reporter can take them all. */
  const BEFORE = 120;
  /** Queued by --offline runs while the reporters run. */
  const DURING = 30;
  const ROLES: Role[] = ['stop', 'stop', 'kill', 'kill', 'kill', 'kill', 'none', 'none'];

  it(`${BEFORE + DURING} uses queued by concurrent --offline runs, reported by ${ROLES.length} online runs at once of which some are killed mid-report: every use is audited, at most one twice per killed reporter, and the queue ends empty`, async () => {
    const job = await newJob();
    await queueUses(job, 0, BEFORE, 4);
    const queue = queueOf(job);
    expect(readdirSync(queue)).toHaveLength(BEFORE);

    const reporters = new Map<number, Reporter>();
    const unwatch = watchClaims(queue, (pid, claim) => {
      const reporter = reporters.get(pid);
      if (reporter !== undefined) onReporterClaim(reporter, claim);
    });
    const wave = ROLES.map((role) => startReporter(job, role));
    for (const reporter of wave) reporters.set(reporter.child.pid!, reporter);
    try {
      const writers = queueUses(job, BEFORE, DURING, 2);
      // A frozen reporter never ends by itself: it is waited for until frozen, the others to the end.
      await Promise.all(wave.map((reporter) => (reporter.role === 'stop' ? Promise.race([reporter.done, reporter.frozen]) : reporter.done)));
      await writers;
    } finally {
      unwatch();
    }

    // The others worked through the queue around a frozen reporter's claim, never taking it: its
    // holder is alive. Then it dies holding it.
    const holders = wave.filter((reporter) => reporter.frozenOn !== undefined);
    expect(holders.length, 'no reporter was frozen holding a claim').toBeGreaterThan(0);
    for (const reporter of holders) {
      expect(existsSync(reporter.frozenOn!), "a live reporter's claim was given back").toBe(true);
      reporter.killed = signal(reporter.child, 'SIGKILL');
      expect(reporter.killed).toBe(true);
    }
    for (const reporter of wave) {
      const result = await reporter.done;
      if (reporter.killed) continue;
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/RWS_FALLBACK_NOT_REPORTED|RWS_FALLBACK_QUEUE_INVALID/);
    }
    const killed = wave.filter((reporter) => reporter.killed).length;

    await reportTheRest(job);
    // A reporter holds one claim at a time: killed after the vault stored that use and before
    // the entry went, it is the one use sent again.
    const duplicated = expectAudited(job, Array.from({ length: BEFORE + DURING }, (_, n) => subjectOf(n)));
    console.info(`offline uses: ${BEFORE + DURING} queued, ${duplicated} audited twice; ${killed} of ${ROLES.length} reporters killed (${holders.length} frozen holding a claim first)`);
    expect(duplicated).toBeLessThanOrEqual(killed);
  }, 60_000);

  it('the vault SIGKILLed while 4 online runs report 60 uses: started again where it was, later runs report the rest, none lost', async () => {
    const job = await newJob();
    await queueUses(job, 0, 60, 4);
    // Between the 5th and the 30th claim: each reporter has a use in hand or just sent one.
    const killAt = 5 + Math.floor(Math.random() * 26);
    let claims = 0;
    const vault = server;
    const unwatch = watchClaims(queueOf(job), (_pid, claim) => {
      if (existsSync(claim) && ++claims === killAt) vault.process.kill('SIGKILL');
    });
    let results: Result[];
    try {
      results = await Promise.all(Array.from({ length: 4 }, (_, n) => start(job, ['--fallback', '--subject', `reporter-${n}`]).done));
    } finally {
      unwatch();
    }
    expect(claims).toBeGreaterThanOrEqual(killAt);
    await stopVault();
    server = await startServer(store, ['--port', new URL(vault.url).port], env);

    // Each run had its secrets: from the vault, its report cut off (the uses stay queued); or
    // from the copy, when the vault was gone before it asked, which is one more use.
    const fromCopy: string[] = [];
    results.forEach((result, n) => {
      expect(result.exitCode, result.stderr).toBe(0);
      if (result.stderr.includes('RWS_FALLBACK_USED')) fromCopy.push(`reporter-${n}`);
    });
    await reportTheRest(job);
    const duplicated = expectAudited(job, [...Array.from({ length: 60 }, (_, n) => subjectOf(n)), ...fromCopy]);
    console.info(`offline uses: vault killed at the claim ${killAt}; ${duplicated} audited twice; ${fromCopy.length} of 4 reporters ran from the copy`);
    // One request in flight per reporter when the vault died: stored, but never answered.
    expect(duplicated).toBeLessThanOrEqual(4);
  }, 60_000);
});

// The claims' side alone: the vault's state does not matter.
describe('a reporter that dies unreaped', () => {
  useVault(BACKENDS[0]!);

  it('a reporter killed holding a claim while its parent cannot reap it yet (a zombie till then): the next run gives the claim back and reports the use', async () => {
    const job = await newJob();
    await queueUses(job, 0, 20, 4);
    const queue = queueOf(job);
    // The wrapper under a shell, as cron and scripts start it: killed, it stays a zombie until the
    // shell reaps it, and a stopped shell reaps nothing.
    const shell = start(job, ['--fallback', '--subject', 'reporter'], true);
    let freezing = false;
    let onFrozen = (_: { pid: number; claim: string }) => {};
    const held = new Promise<{ pid: number; claim: string }>((resolve) => (onFrozen = resolve));
    const unwatch = watchClaims(queue, (pid, claim) => {
      if (freezing || !existsSync(claim)) return;
      freezing = true;
      void freezeHolding(pid, claim, (name) => signalPid(pid, name)).then((holds) => (holds ? onFrozen({ pid, claim }) : (freezing = false)));
    });
    let frozen: { pid: number; claim: string } | 'ended';
    try {
      frozen = await Promise.race([held, shell.done.then(() => 'ended' as const)]);
    } finally {
      unwatch();
    }
    if (frozen === 'ended') return expect.fail('the reporter was never stopped holding a claim');
    const { pid, claim } = frozen;
    try {
      expect(stateOf(pid)).toBe('T');
      expect(parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.ppid, "the wrapper is the shell's child").toBe(shell.child.pid);
      expect(await stopNow(shell.child.pid!, (name) => signal(shell.child, name))).toBe(true);
      signalPid(pid, 'SIGKILL');
      while (stateOf(pid) !== 'Z') await new Promise((resolve) => setTimeout(resolve, 5));
      expect(existsSync(claim)).toBe(true);
      await reportTheRest(job);
    } finally {
      // While the shell is stopped the pid is still the wrapper's: killed before the shell may reap it.
      signalPid(pid, 'SIGKILL');
      signal(shell.child, 'SIGCONT');
    }
    expect((await shell.done).exitCode).toBe(137);
    expect(expectAudited(job, Array.from({ length: 20 }, (_, n) => subjectOf(n)))).toBeLessThanOrEqual(1);
  }, 60_000);
});
