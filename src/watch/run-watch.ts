// --watch: the child runs as long as it wants, and gets new secrets when what it would receive
// changes. One child at a time, in a process group of its own; a change is acted on after the
// debounce (restart, reload signal or exit); the child's own exit ends the wrapper with its
// status; a refused credential ends the watch (exit 77) or only the refreshing (--on-revoke keep).
// Everything here runs only with --watch: runWrapper loads this module lazily.
import { EXIT_REVOKED, EXIT_SECRETS_CHANGED, RwsError, WatchError } from '../errors.js';
import type { Disposable } from '../process/cleanup.js';
import type { Outcome } from '../process/exit-status.js';
import type { RunningChild } from '../process/spawn.js';
import type { RunIo, RunPlan } from '../run.js';
import type { LoadContext, Secrets } from '../sources/source.js';
import type { VaultError } from '../vault-client/index.js';
import type { RetainedMask } from './mask-retention.js';
import { RetryTimer } from './backoff.js';
import { Debouncer } from './debounce.js';
import { describeChange, SecretsDigester, type SecretsDigest } from './digest.js';
import { GroupSignals } from './group-signals.js';
import { type Injected, WatchInjection } from './injection.js';
import { childUserEnv } from '../process/user.js';
import { refuseOversizedEnvironment } from '../inject/env-limits.js';
import { finishGroup, killGroupOnExit, signalCatchers, signalGroup, stopGroup, type StopOptions } from './process-group.js';
import { RefreshLog } from './refresh-log.js';
import type { WatchSettings } from './settings.js';
import { openFeed } from './feed.js';
import type { WatchKit } from './kit.js';

/** A child started after a change that ends within this long is named as the change's casualty. */
const EARLY_EXIT_MS = 5000;

type WatchEvent =
  | { kind: 'exit'; generation: Generation; outcome: Outcome }
  | { kind: 'settled'; reasons: string[] }
  | { kind: 'revoked'; error: VaultError }
  | { kind: 'end'; signal: NodeJS.Signals };

interface Generation {
  running: RunningChild;
  /** Its group's SIGKILL on an abrupt exit, held by the cleanup until the group is gone. */
  guard: Disposable;
  pgid: number;
  startedAt: number;
  /** The change that made this child, for the line if it dies young. */
  after: string | undefined;
  mask: RetainedMask | undefined;
  /** Its leader has exited (the exit event may still wait in the queue). */
  exited: boolean;
}

export async function runWatch(plan: RunPlan, watch: WatchSettings, io: RunIo, kit: WatchKit): Promise<Outcome> {
  const { buildChildEnv, Cleanup, maskFilters, preparePlacement, selectSecrets, startChild, Stopped, StopSwitch } = kit;
  const cleanup = new Cleanup();
  const ending = new StopSwitch();
  const events = new EventQueue<WatchEvent>();
  const signals = new GroupSignals({
    ignored: new Set(plan.ignoredSignals),
    onEnd: (signal) => {
      ending.trigger(signal);
      events.push({ kind: 'end', signal });
    },
    onAgain: (signal) => ending.trigger(signal),
    debug: io.log.debug,
  });
  signals.install();
  const placement = plan.injectAs === 'env' ? undefined : preparePlacement(plan, io);
  placement?.catch(() => undefined);
  const unfinished: Array<Promise<unknown>> = [];
  const context: LoadContext = { warn: io.log.warn, debug: io.log.debug, stopped: ending.controller.signal, mustFinish: (work) => void unfinished.push(work.catch(() => undefined)) };
  const refreshLog = new RefreshLog(io.log);
  const debouncer = new Debouncer(watch.debounceMs, watch.maxWaitMs, (reasons) => events.push({ kind: 'settled', reasons }));
  const stopOptions: StopOptions = { signal: watch.stopSignal, timeoutMs: watch.stopTimeoutMs, note: (message) => io.log.notice(message) };
  const feed = openFeed(plan, watch, {
    context,
    log: refreshLog,
    changed: (reason) => {
      io.log.debug(`watch: change seen in ${reason}`);
      debouncer.nudge(reason);
    },
    revoked: (error) => events.push({ kind: 'revoked', error }),
  });
  let injection: WatchInjection | undefined;
  let live: Generation | undefined;
  // A secrets file that could not be made is tried again by a nudge of the debounce: no source
  // will say anything new about it.
  const fileRetry = new RetryTimer(() => debouncer.nudge('the secrets file (a new try)'));
  const refreshed = (): void => {
    refreshLog.ok(feed.label);
    fileRetry.reset();
  };
  const refreshFailed = (error: unknown, next: string, retryMs = watch.intervalMs): void => {
    const known = error instanceof RwsError ? error : undefined;
    refreshLog.failing(feed.label, known?.code ?? 'RWS_INTERNAL', known?.message ?? 'internal error', retryMs, next);
  };

  const childEnv = (variables: ReadonlyMap<string, string>): ReturnType<typeof buildChildEnv> => {
    const built = buildChildEnv({ parent: plan.parentEnv, keep: plan.keepEnv, pristine: plan.pristine, injected: variables });
    if (plan.user) Object.assign(built.env, childUserEnv(plan.user));
    return built;
  };

  const start = async (secrets: Secrets, injected: Injected, after: string | undefined): Promise<Generation> => {
    await injection!.adopt(injected);
    const { env, shadowed } = childEnv(injected.variables);
    if (after === undefined) for (const name of shadowed) io.log.info(`${name}: the injected variable replaces the inherited one`);
    const filters = plan.mask ? await maskFilters(secrets, io) : undefined;
    const mask = filters && new (await import('./mask-retention.js')).RetainedMask([filters.stdout, filters.stderr], secrets.values());
    // A stop signal, or a hangup, while this child was being prepared (the old child's file being
    // removed, say) came while no child ran: it ends the run, and no child starts only to get it.
    if (signals.endedBy) throw new Stopped(signals.endedBy);
    const running = await startChild({ command: plan.command, args: plan.args, env, extraFd: injected.fd, filters, ignoredSignals: plan.ignoredSignals, user: plan.user, ownGroup: true });
    const guard = killGroupOnExit(running);
    cleanup.add(guard);
    const generation: Generation = { running, guard, pgid: running.child.pid!, startedAt: performance.now(), after, mask, exited: false };
    void running.done.then((outcome) => {
      generation.exited = true;
      // No change reaches a child that has exited: the masks keep the values they have.
      mask?.close();
      events.push({ kind: 'exit', generation, outcome });
    });
    signals.attach(generation.pgid);
    live = generation;
    // A stop signal that came while the child was being started: it goes to the group now.
    if (signals.endedBy) signalGroup(generation.pgid, signals.endedBy);
    io.log.debug(`watch: child ${generation.pgid} started in its own process group`);
    return generation;
  };

  try {
    await ending.race(feed.prepare());
    const secrets = selectSecrets(await ending.race(feed.initial()), plan.selection);
    const digester = new SecretsDigester();
    let current: SecretsDigest = digester.digest(secrets);
    injection = new WatchInjection(plan, placement && (await ending.race(placement)), cleanup, io, watch.onChange.kind === 'signal', kit.SecretsFile);
    io.log.info(`injecting ${secrets.size} secret(s) as ${plan.injectAs}: ${[...secrets.keys()].join(', ') || '(none)'}`);
    let generation = await start(secrets, await injection.prepare(secrets), undefined);
    feed.start();
    io.log.info(`watching ${feed.label} for changes (${feed.how}); on a change: ${watch.onChange.kind === 'signal' ? `rewrite the file, send ${watch.onChange.signal}` : watch.onChange.kind}`);

    for (;;) {
      const event = await events.next();
      if (event.kind === 'exit') {
        if (event.generation !== generation) continue;
        return await ended(generation, event.outcome);
      }
      if (event.kind === 'end') {
        // The signal already went to the group (GroupSignals): no more refreshing, and SIGKILL if it lingers.
        debouncer.cancel();
        const outcome = stopping(generation);
        // A refresh's revoke may wait up to --timeout on a vault that hangs; a second INT or TERM
        // leaves it (the token then expires by itself).
        await Promise.race([feed.stop(), ending.again]);
        return await outcome;
      }
      if (event.kind === 'revoked') {
        if (watch.onRevoke === 'keep') {
          io.log.warn('RWS_WATCH_REVOKED', `${event.error.message}; refreshing has stopped, and the child keeps running with the secrets it has (--on-revoke keep)`);
          continue;
        }
        io.log.error(new WatchError('RWS_WATCH_REVOKED', `${event.error.message}; stopping the child (--on-revoke exit)`, 'issue a new credential and start run-with-secrets again, or pass --on-revoke keep to keep the child running', EXIT_REVOKED));
        debouncer.cancel();
        await feed.stop();
        signals.detach(generation.pgid);
        await stopGroup(generation.running, stopOptions);
        live = undefined;
        return { kind: 'exit', code: EXIT_REVOKED };
      }
      // Settled: read what the sources hold now and compare it with what the child has.
      if (ending.signal) continue;
      let fresh: Secrets;
      try {
        fresh = selectSecrets(await feed.current(), plan.selection);
        // A rotated value the secrets file (a line break in dotenv) or the environment cannot
        // carry (a variable over 128 KiB, or all of them over the exec limit) is a failed refresh:
        // found out after the stop, it left the app dead with exit 125.
        await injection.check(fresh);
        if (plan.injectAs === 'env') refuseOversizedEnvironment(childEnv(fresh).env, [plan.command, ...plan.args]);
      } catch (error) {
        refreshFailed(error, 'the sources are read again at their next change');
        continue;
      }
      // The child died meanwhile: its exit (queued) ends the wrapper; no restart over it.
      if (generation.exited) continue;
      const digest = digester.digest(fresh);
      if (digest.whole === current.whole) {
        refreshed();
        io.log.debug(`watch: ${event.reasons.join(', ')} changed, but not what the child receives: nothing to do`);
        continue;
      }
      const change = `${describeChange(current, digest)} (${feed.label})`;
      // The new file is made while the child runs on the old one: a runtime directory that is full
      // or no longer private fails this refresh (tried again with backoff), not the app, which a
      // stop before it left dead with exit 125.
      let injected: Injected | undefined;
      try {
        if (watch.onChange.kind === 'signal') await injection.rewrite(fresh);
        if (watch.onChange.kind === 'restart') injected = await injection.prepare(fresh);
      } catch (error) {
        const retryMs = fileRetry.schedule();
        refreshFailed(error, `the secrets file is made again in ${(retryMs / 1000).toFixed(1)}s`, retryMs);
        continue;
      }
      refreshed();
      if (watch.onChange.kind === 'exit') {
        io.log.notice(`secrets changed: ${change}; stopping the child and exiting ${EXIT_SECRETS_CHANGED} (--on-change exit)`);
        await feed.stop();
        signals.detach(generation.pgid);
        await stopGroup(generation.running, stopOptions);
        live = undefined;
        return { kind: 'exit', code: EXIT_SECRETS_CHANGED };
      }
      if (watch.onChange.kind === 'signal') {
        // The new file first (above), then the signal: the child rereads a complete file.
        if (generation.mask) {
          // A new value too short to mask is said, as it is when a child starts with one.
          (await import('../inject/mask.js')).warnUnmasked(fresh, io.log.warn);
          generation.mask.replace(fresh.values());
        }
        current = digest;
        const { pids: signalled, caught, ignored } = await signalCatchers(generation.pgid, watch.onChange.signal);
        io.log.notice(`secrets changed: ${change}; the secrets file is rewritten, and ${watch.onChange.signal} sent to ${signalled.length === 1 && signalled[0] === generation.pgid ? 'the child' : `pid ${signalled.join(', ')} of the child's group (${signalled.length === 1 ? 'the one that catches' : 'those that catch'} it)`}`);
        // The notice alone read as a reload done, for a child that has no handler for the signal.
        if (!caught) {
          const effect = ignored ? 'the child ignores it, and keeps the values it read until it rereads the file by itself' : 'its default action applies to the child (for most signals, it ends)';
          io.log.warn('RWS_WATCH_SIGNAL_UNCAUGHT', `no process of the child's group catches ${watch.onChange.signal}: ${effect}; for a program that does not reload on a signal, use --on-change restart`);
        }
        continue;
      }
      io.log.notice(`secrets changed: ${change}; restarting the child (${watch.stopSignal} to its process group)`);
      signals.detach(generation.pgid);
      const previous = generation;
      await stopGroup(previous.running, stopOptions);
      live = undefined;
      cleanup.forget(previous.guard);
      // A stop signal during the restart: no new child.
      if (signals.endedBy) return { kind: 'signal', signal: signals.endedBy };
      current = digest;
      generation = await start(fresh, injected!, change);
      io.log.debug(`watch: child ${previous.pgid} stopped, child ${generation.pgid} started`);
    }
  } catch (error) {
    if (error instanceof Stopped) {
      io.log.progress(undefined);
      io.log.debug(`${error.signal} received before the child started: revoking what was minted, cleaning up`);
      await Promise.race([Promise.all(unfinished), ending.again]);
      return { kind: 'signal', signal: error.signal };
    }
    throw error;
  } finally {
    fileRetry.cancel();
    debouncer.cancel();
    await Promise.race([feed.stop().catch(() => undefined), ending.again]);
    // An error while a child runs (a file that cannot be rewritten, a command gone): the group goes too.
    if (live) {
      signals.detach(live.pgid);
      await stopGroup(live.running, stopOptions);
    }
    await injection?.release().catch(() => undefined);
    await cleanup.run();
    signals.uninstall();
  }

  /** The child ended by itself: the wrapper ends with its status, after the rest of its group. */
  async function ended(generation: Generation, outcome: Outcome): Promise<Outcome> {
    live = undefined;
    signals.detach(generation.pgid);
    await finishGroup(generation.pgid, stopOptions, true);
    const how = outcome.kind === 'exit' ? `exited with ${outcome.code}` : `was killed by ${outcome.signal}`;
    const age = performance.now() - generation.startedAt;
    if (generation.after !== undefined && age < EARLY_EXIT_MS) {
      io.log.warn('RWS_WATCH_CHILD_DIED', `the child started after a change (${generation.after}) ${how} within ${(age / 1000).toFixed(1)}s; not restarting it: run-with-secrets ends with its status`);
    } else {
      io.log.debug(`child ${how}; the watch ends with it`);
    }
    return outcome;
  }

  /** A stop signal reached the group: wait for it to go, SIGKILL after --stop-timeout. */
  async function stopping(generation: Generation): Promise<Outcome> {
    const timer = setTimeout(() => {
      io.log.notice(`the child's process group outlived the stop signal by ${watch.stopTimeoutMs / 1000}s: sending SIGKILL to the group`);
      signalGroup(generation.pgid, 'SIGKILL');
    }, watch.stopTimeoutMs);
    try {
      const outcome = await generation.running.done;
      live = undefined;
      signals.detach(generation.pgid);
      await finishGroup(generation.pgid, stopOptions, true);
      return outcome;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Events in arrival order; `next` waits for one. */
class EventQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((item: T) => void) | undefined;

  push(item: T): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter(item);
    } else {
      this.items.push(item);
    }
  }

  next(): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift()!);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }
}
