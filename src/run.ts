// The wrapper's flow: load → select → inject → spawn → wait → dispose. No argv, no process.exit:
// it takes a plan and returns how the child ended, so the CLI, the tests and a future --watch
// loop (which restarts the child with fresh secrets) can all drive it.
import type { Writable } from 'node:stream';
import type { Logger } from './cli/output.js';
import { buildChildEnv } from './inject/child-env.js';
import type { FileFormat } from './inject/file-format.js';
import { choosePlacement, processIsAlive, removeLeftovers, type Placement, type PlacementOptions } from './inject/placement.js';
import { Cleanup, Stopped, StopSwitch } from './process/cleanup.js';
import { groupIsForeground } from './process/foreground.js';
import type { Outcome } from './process/exit-status.js';
import { SignalRelay } from './process/signals.js';
import { startChild } from './process/spawn.js';
import { childUserEnv, type ChildUser } from './process/user.js';
import type { WatchSettings } from './watch/settings.js';
import { selectSecrets, type Selection } from './select.js';
import { loadAll, loadAllNames, type SecretSource, type Secrets } from './sources/source.js';

export type InjectMode = 'env' | 'file' | 'fd';

export interface RunPlan {
  sources: SecretSource[];
  selection: Selection;
  injectAs: InjectMode;
  fileVar: string;
  fileFormat: FileFormat;
  keepEnv: string[];
  pristine: boolean;
  mask: boolean;
  dryRun: boolean;
  killAfterMs: number | undefined;
  command: string;
  args: string[];
  parentEnv: Readonly<Record<string, string | undefined>>;
  placement: PlacementOptions;
  onTerminal: boolean;
  ignoredSignals: readonly NodeJS.Signals[];
  /** --user: the account the child runs as (the wrapper is root). */
  user?: ChildUser | undefined;
  /** --watch: keep the child supplied with current secrets (src/watch/). */
  watch?: WatchSettings | undefined;
}

export interface RunIo {
  stdout: Writable;
  stderr: Writable;
  log: Logger;
  jsonOutput: boolean;
}

const FILE_EXTENSIONS: Record<FileFormat, string> = { dotenv: 'secrets.env', shell: 'secrets.sh', json: 'secrets.json' };

export async function runWrapper(plan: RunPlan, io: RunIo): Promise<Outcome> {
  // The watch loop is loaded only for --watch: a plain run's start-up stays as it was.
  if (plan.watch && !plan.dryRun) {
    const { SecretsFile } = await import('./inject/secrets-file.js');
    const kit = { buildChildEnv, Cleanup, maskFilters, preparePlacement, SecretsFile, selectSecrets, startChild, Stopped, StopSwitch };
    return (await import('./watch/run-watch.js')).runWatch(plan, plan.watch, io, kit);
  }
  const cleanup = new Cleanup();
  const stop = new StopSwitch();
  const relay = new SignalRelay({
    // Without /proc, whether one of stdin, stdout and stderr is a terminal is the best guess.
    terminalDelivers: () => groupIsForeground() ?? plan.onTerminal,
    ignored: new Set(plan.ignoredSignals),
    killAfterMs: plan.killAfterMs,
    onStopBeforeChild: (signal) => stop.trigger(signal),
    debug: (message) => io.log.debug(message),
  });
  relay.install();
  if (plan.ignoredSignals.length > 0) io.log.debug(`ignored when started, and so for the child: ${plan.ignoredSignals.join(', ')}`);
  // The leftover sweep touches only the runtime directory: it runs while the sources load.
  const placement = plan.dryRun ? undefined : preparePlacement(plan, io);
  placement?.catch(() => undefined);
  // Work of the sources that a stop signal must still wait for: the revoke of a minted token.
  const unfinished: Array<Promise<unknown>> = [];
  try {
    const context = { warn: io.log.warn, debug: io.log.debug, stopped: stop.controller.signal, mustFinish: (work: Promise<unknown>) => void unfinished.push(work.catch(() => undefined)) };
    if (plan.dryRun) {
      // Names only: a vault lists them without sending a single value.
      describeDryRun(plan, selectSecrets(await stop.race(loadAllNames(plan.sources, context)), plan.selection), io);
      return { kind: 'exit', code: 0 };
    }
    const secrets = selectSecrets(await stop.race(loadAll(plan.sources, context)), plan.selection);
    const injected = await stop.race(inject(plan, secrets, cleanup, await placement!, io));
    const { env, shadowed } = buildChildEnv({ parent: plan.parentEnv, keep: plan.keepEnv, pristine: plan.pristine, injected: injected.variables });
    for (const name of shadowed) io.log.info(`${name}: the injected variable replaces the inherited one`);
    if (plan.user) Object.assign(env, childUserEnv(plan.user));
    io.log.info(`injecting ${secrets.size} secret(s) as ${plan.injectAs}: ${[...secrets.keys()].join(', ') || '(none)'}`);
    const running = await startChild({
      command: plan.command,
      args: plan.args,
      env,
      extraFd: injected.fd,
      filters: plan.mask ? await maskFilters(secrets, io) : undefined,
      ignoredSignals: plan.ignoredSignals,
      user: plan.user,
    });
    relay.attach(running.child);
    // A stop signal that arrived while the child was being started is passed on now.
    if (stop.signal) running.child.kill(stop.signal);
    const outcome = await running.done;
    io.log.debug(outcome.kind === 'exit' ? `child exited with ${outcome.code}` : `child was killed by ${outcome.signal}`);
    return outcome;
  } catch (error) {
    if (error instanceof Stopped) {
      io.log.progress(undefined);
      io.log.debug(`${error.signal} received before the child started: revoking what was minted, cleaning up`);
      // A second stop signal does not wait: the token then expires by itself.
      await Promise.race([Promise.all(unfinished), stop.again]);
      return { kind: 'signal', signal: error.signal };
    }
    throw error;
  } finally {
    // Clean up while our handlers still catch stop signals: a SIGTERM now must not kill the
    // wrapper by default action before the secrets file is gone.
    await cleanup.run();
    relay.uninstall();
  }
}

interface Injection {
  variables: Map<string, string>;
  fd: number | undefined;
}

/** Where a secrets file would go, after removing what runs killed with SIGKILL left there. */
export async function preparePlacement(plan: RunPlan, io: RunIo): Promise<Placement> {
  const placement = await choosePlacement(plan.placement);
  const removed = await removeLeftovers(placement.base, plan.placement.uid, processIsAlive);
  if (removed > 0) io.log.info(`removed ${removed} leftover secrets director${removed === 1 ? 'y' : 'ies'} of killed runs in ${placement.base}`);
  return placement;
}

async function inject(plan: RunPlan, secrets: Secrets, cleanup: Cleanup, placement: Placement, io: RunIo): Promise<Injection> {
  if (plan.injectAs === 'env') return { variables: secrets, fd: undefined };

  // Loaded here, not at start-up: env mode, the common cron case, never needs it.
  const { serialize } = await import('./inject/file-format.js');
  const content = serialize(secrets, plan.fileFormat);
  if (!placement.ramBacked) {
    io.log.warn('RWS_NOT_RAM_BACKED', `no RAM-backed directory is usable; the secrets file goes to ${placement.base} (set XDG_RUNTIME_DIR or mount /dev/shm)`);
  }
  // Loaded here, like the serializer: env mode never writes a file.
  const { SecretsFile } = await import('./inject/secrets-file.js');
  const file = SecretsFile.create(placement.base, FILE_EXTENSIONS[plan.fileFormat], content, (created) => cleanup.add(created));
  // The child user must be able to open it (by path, or as /dev/fd/3, which reopens the inode).
  if (plan.user) await file.handTo(plan.user.uid, plan.user.gid);
  if (plan.injectAs === 'file') {
    io.log.debug(`secrets file written to ${file.path}`);
    return { variables: new Map([[plan.fileVar, file.path]]), fd: undefined };
  }
  const fd = await file.detach();
  io.log.debug('secrets file unlinked; handing it to the child as /dev/fd/3');
  return { variables: new Map([[plan.fileVar, '/dev/fd/3']]), fd };
}

export async function maskFilters(secrets: Secrets, io: RunIo) {
  const { buildNeedles, MaskStream, warnUnmasked } = await import('./inject/mask.js');
  warnUnmasked(secrets, io.log.warn);
  const needles = buildNeedles(secrets.values());
  return { stdout: new MaskStream(needles), stderr: new MaskStream(needles), out: io.stdout, err: io.stderr };
}

function describeDryRun(plan: RunPlan, secrets: Secrets, io: RunIo): void {
  const injected = plan.injectAs === 'env' ? secrets : new Map([[plan.fileVar, '']]);
  const { env } = buildChildEnv({ parent: plan.parentEnv, keep: plan.keepEnv, pristine: plan.pristine, injected });
  if (plan.user) Object.assign(env, childUserEnv(plan.user));
  const secretNames = [...secrets.keys()];
  const envNames = Object.keys(env).sort();
  const user = plan.user ? { name: plan.user.name, uid: plan.user.uid, gid: plan.user.gid } : null;
  if (io.jsonOutput) {
    const watch = plan.watch && { sources: plan.sources.map((source) => source.label), interval_ms: plan.watch.intervalMs, debounce_ms: plan.watch.debounceMs, max_wait_ms: plan.watch.maxWaitMs, on_change: plan.watch.onChange.kind === 'signal' ? `signal:${plan.watch.onChange.signal}` : plan.watch.onChange.kind, stop_signal: plan.watch.stopSignal, stop_timeout_ms: plan.watch.stopTimeoutMs, on_revoke: plan.watch.onRevoke };
    io.stdout.write(`${JSON.stringify({ inject_as: plan.injectAs, secrets: secretNames, environment: envNames, command: plan.command, args: plan.args, user, ...(watch ? { watch } : {}) })}\n`);
    return;
  }
  io.stdout.write(`would inject ${secretNames.length} secret(s) as ${plan.injectAs}: ${secretNames.join(', ') || '(none)'}\n`);
  if (plan.injectAs !== 'env') io.stdout.write(`the child would read them from the file named by ${plan.fileVar} (${plan.fileFormat})\n`);
  io.stdout.write(`the child's environment would hold ${envNames.length} variable(s): ${envNames.join(', ')}\n`);
  if (plan.command) io.stdout.write(`would run: ${[plan.command, ...plan.args].map(shellQuote).join(' ')}${user ? ` as ${user.name} (uid ${user.uid}, gid ${user.gid})` : ''}\n`);
  if (plan.watch) io.stdout.write(`${describeWatch(plan, plan.watch)}\n`);
}

/** --dry-run --watch: what would be watched and what a change would do, in one line. */
function describeWatch(plan: RunPlan, watch: WatchSettings): string {
  const seconds = (ms: number): string => `${ms / 1000}s`;
  const what = plan.sources.map((source) => source.label).join(', ');
  const action = watch.onChange.kind === 'restart' ? `restart the child (${watch.stopSignal} to its group, SIGKILL after ${seconds(watch.stopTimeoutMs)})` : watch.onChange.kind === 'signal' ? `rewrite the secrets file, then send ${watch.onChange.signal}` : `stop the child and exit 75`;
  // Local files have no credential to refuse: the clause would describe a vault the run never asks.
  const refused = plan.sources.some((source) => source.fromVault === true) ? `; if the vault refuses the credential: ${watch.onRevoke === 'exit' ? 'stop the child and exit 77' : 'keep the child, stop refreshing'}` : '';
  return `would watch ${what} (every ${seconds(watch.intervalMs)}; debounce ${seconds(watch.debounceMs)}, at most ${seconds(watch.maxWaitMs)}); on a change of the injected names or values: ${action}${refused}`;
}

/** As a POSIX shell would need it typed: bare when safe, else in single quotes. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
