// The offline-use queue's promise, "reported twice after a crash, never lost", held to it with
// many processes at once: real --offline runs queue uses while real online runs report them to a
// real secrets-server, and some reporters are SIGKILLed in the middle of reporting. Some are
// first frozen (SIGSTOP) the moment their claim of an entry is on disk, and left frozen while the
// others work through the queue, the worst point for a claim; later runs finish the reporting,
// and the server's own audit trail says which uses arrived.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, makeApiKey, makeStore, startServer, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { makeRuntimeDir, removeDir, runBin } from '../helpers/cli.js';
import { parseProcStat } from '../../src/process/proc-stat.js';

/** Queued before any reporter starts: more than one run reports (100), so no reporter can take them all. */
const QUEUED_BEFORE = 120;
/** Queued by --offline runs while the reporters run. */
const QUEUED_DURING = 30;
const REPORTERS = 8;
/** Roles of the reporters started together: frozen holding a claim then killed, killed as a claim comes or goes, left alone. */
const ROLES = ['stop', 'stop', 'kill', 'kill', 'kill', 'kill', 'none', 'none'] as const;

let store: TestStore;
let server: RunningServer;
let runtimeDir: string;
let apiKey: string;
const printed: string[] = [];
/** Wrappers not yet reaped (so their pids are still theirs): none is left stopped when a test fails. */
const running = new Set<ChildProcess>();

beforeAll(async () => {
  store = await makeStore({ prod: { JOB_DB_PASSWORD: 'uses-db-secret-1', JOB_API_TOKEN: 'uses-api-secret-2' } });
  server = await startServer(store);
  apiKey = (await makeApiKey(store, ['prod'], ['JOB_*'])).key;
  runtimeDir = makeRuntimeDir();
}, 60_000);

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  const all = [...printed, server?.stderr() ?? ''].join('\n');
  expect(all).not.toContain(apiKey);
  await server?.stop('SIGKILL');
  await store?.cleanup();
  if (runtimeDir !== undefined) removeDir(runtimeDir);
});

/** A wrapper run as users start it; its pid is the wrapper's own (the bin's sh execs node). */
function start(flags: string[]): { child: ChildProcess; done: Promise<{ exitCode?: number; stderr: string }> } {
  const run = runBin(['-e', 'prod', '-k', 'JOB_*', ...flags, '--', 'true'], {
    runtimeDir,
    env: { XDG_STATE_HOME: join(runtimeDir, 'state'), RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey },
  });
  running.add(run);
  const done = run.then((result) => {
    running.delete(run);
    printed.push(String(result.stdout), String(result.stderr));
    return { exitCode: result.exitCode, stderr: String(result.stderr) };
  });
  return { child: run, done };
}

const subjectOf = (n: number) => `use-${String(n).padStart(3, '0')}`;
const online = () => start(['--fallback']).done;
const offline = (n: number) => start(['--offline', '--subject', subjectOf(n)]).done;

/** Runs `count` uses from `first` on, `parallel` at a time; each must run from the copy and be queued. */
async function queueUses(first: number, count: number, parallel: number): Promise<void> {
  let next = first;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < first + count) {
        const result = await offline(next++);
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).toContain('RWS_FALLBACK_USED');
        expect(result.stderr).not.toContain('RWS_FALLBACK_NOT_RECORDED');
      }
    }),
  );
}

/** A signal to a wrapper that may have ended meanwhile: false when it had. Never to a reaped one, whose pid may be another's. */
function signal(child: ChildProcess, name: NodeJS.Signals): boolean {
  return child.exitCode === null && child.signalCode === null && child.kill(name);
}

function stateOf(pid: number): string | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
  } catch {
    return undefined;
  }
}

/** SIGSTOP lands a moment after kill() returns: true once it is stopped (T), false if it ended first. */
async function stopNow(child: ChildProcess): Promise<boolean> {
  if (!signal(child, 'SIGSTOP')) return false;
  for (;;) {
    const state = stateOf(child.pid!);
    if (state === 'T') return true;
    if (state === undefined || state === 'Z' || state === 'X') return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface Reporter {
  child: ChildProcess;
  role: (typeof ROLES)[number];
  /** kill: SIGKILLed at this event of its claims (made or gone; 1 = its first claim), wherever that leaves it. */
  killAt: number;
  events: number;
  freezing: boolean;
  /** stop: the claim it was frozen holding. */
  frozenOn?: string;
  frozen: Promise<void>;
  onFrozen: () => void;
  killed: boolean;
  done: Promise<{ exitCode?: number; stderr: string }>;
}

function startReporter(role: Reporter['role']): Reporter {
  const { child, done } = start(['--fallback']);
  let onFrozen = () => {};
  const frozen = new Promise<void>((resolve) => (onFrozen = resolve));
  return { child, role, killAt: 1 + Math.floor(Math.random() * 12), events: 0, freezing: false, frozen, onFrozen, killed: false, done };
}

/** Stopped holding `claim` only when the claim is still there once it is stopped; else it goes on to its next one. */
async function freezeOnClaim(reporter: Reporter, claim: string): Promise<void> {
  reporter.freezing = true;
  if ((await stopNow(reporter.child)) && existsSync(claim)) {
    reporter.frozenOn = claim;
    return reporter.onFrozen();
  }
  reporter.freezing = false;
  signal(reporter.child, 'SIGCONT');
}

describe('the offline-use queue under SIGKILL', () => {
  it(`${QUEUED_BEFORE + QUEUED_DURING} uses queued by concurrent --offline runs, reported by ${REPORTERS} online runs at once of which some are killed mid-report: every use is audited, at most one twice per killed reporter, and the queue ends empty`, async () => {
    const first = await online();
    expect(first.exitCode, first.stderr).toBe(0);
    await queueUses(0, QUEUED_BEFORE, 4);
    const fallbackDir = join(runtimeDir, 'state', 'run-with-secrets', 'fallback');
    const queue = join(fallbackDir, readdirSync(fallbackDir).find((name) => name.endsWith('.uses'))!);
    expect(readdirSync(queue)).toHaveLength(QUEUED_BEFORE);

    const reporters = new Map<number, Reporter>();
    // inotify names each rename and removal as it happens; a claim is `<entry>.sending-<pid>`.
    // A killer's signal lands where the reporter got to: a claim just made, a use being sent, or
    // one just removed; a freezer's is made to land while the claim is held.
    const watcher = watch(queue, (_event, name) => {
      const pid = name === null ? undefined : /\.sending-(\d+)$/.exec(name)?.[1];
      const reporter = pid === undefined ? undefined : reporters.get(Number(pid));
      if (reporter === undefined || reporter.killed || reporter.freezing) return;
      reporter.events++;
      if (reporter.role === 'kill' && reporter.events >= reporter.killAt) reporter.killed = signal(reporter.child, 'SIGKILL');
      else if (reporter.role === 'stop' && existsSync(join(queue, name!))) void freezeOnClaim(reporter, join(queue, name!));
    });
    const wave = ROLES.map(startReporter);
    for (const reporter of wave) reporters.set(reporter.child.pid!, reporter);
    try {
      const writers = queueUses(QUEUED_BEFORE, QUEUED_DURING, 2);
      // A frozen reporter never ends by itself: it is waited for until frozen, the others to the end.
      await Promise.all(wave.map((reporter) => (reporter.role === 'stop' ? Promise.race([reporter.done, reporter.frozen]) : reporter.done)));
      await writers;
    } finally {
      watcher.close();
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

    // Later runs give back the dead reporters' claims and send the rest, 100 at most each.
    for (let later = 0; later < 5 && readdirSync(queue).length > 0; later++) {
      const result = await online();
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).not.toMatch(/RWS_FALLBACK_NOT_REPORTED|RWS_FALLBACK_QUEUE_INVALID/);
    }
    expect(readdirSync(queue)).toEqual([]);

    const rows = auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use');
    const subjects = rows.map((row) => /^(use-\d{3}) \(offline at [^)]+\)$/.exec(String(row.subject))?.[1]);
    const expected = Array.from({ length: QUEUED_BEFORE + QUEUED_DURING }, (_, n) => subjectOf(n));
    expect(expected.filter((subject) => !subjects.includes(subject)), 'uses never audited').toEqual([]);
    expect(subjects.filter((subject) => !expected.includes(subject!)), 'offline_use rows of no queued use').toEqual([]);
    // A reporter holds one claim at a time: killed after the vault stored that use and before
    // the entry went, it is the one use sent again.
    const duplicated = rows.length - expected.length;
    console.info(`offline uses: ${expected.length} queued, ${rows.length} audited, ${duplicated} twice; ${killed} of ${REPORTERS} reporters killed (${holders.length} frozen holding a claim first)`);
    expect(duplicated).toBeLessThanOrEqual(killed);
  }, 60_000);
});
