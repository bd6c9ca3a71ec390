// --mask: the child's stdout and stderr come to the wrapper through pipes and go on, filtered, to
// the wrapper's own. What a pipe would do for the child without us is done here too: a reader
// gone gives it SIGPIPE, a full disk fails the write only.
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

const DRAIN_GRACE_MS = 1000;
/**
 * The most the child's pipes can hold at its exit (Linux's pipe-max-size, 1 MiB by default): past
 * that much relayed since, the output is a grandchild's, and waiting for a slow reader to take it
 * would outlive the child for as long as the grandchild writes.
 */
const PIPE_MAX_BYTES = 1 << 20;
const WRITE_FAILED_ONLY = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

export interface OutputFilters {
  stdout: NodeJS.ReadWriteStream;
  stderr: NodeJS.ReadWriteStream;
  out: Writable;
  err: Writable;
}

export interface RelayedOutput {
  /** After the child's exit: settles once its output has been passed on, or given up on. */
  finish(): Promise<void>;
}

export function relayOutput(child: ChildProcess, filters: OutputFilters): RelayedOutput {
  const relayed = { bytes: 0 };
  const drained = pipeOutput(child, filters, relayed);
  return {
    async finish() {
      await drainedOrQuiet(drained, [filters.out, filters.err], relayed);
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
  };
}

/**
 * A grandchild left running may hold the pipes open forever: give the output a moment to drain,
 * then stop relaying it rather than outlive the child. The moment does not run while a reader
 * slower than the child holds the relay: what the child wrote before it exited is still on its
 * way, and was lost when the wait ran out while the reader was behind. That wait is bounded by
 * what the child can have left behind: what our streams held at its exit, and a pipe's worth.
 */
async function drainedOrQuiet(drained: Promise<void>, targets: readonly Writable[], relayed: { bytes: number }): Promise<void> {
  const limit = relayed.bytes + targets.reduce((sum, target) => sum + target.writableLength, 0) + 2 * PIPE_MAX_BYTES;
  let finished = false;
  void drained.then(() => {
    finished = true;
  });
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_GRACE_MS)))]);
    clearTimeout(timer);
    if (finished) return;
    const held = targets.find((target) => target.writableNeedDrain);
    if (held === undefined || relayed.bytes > limit) return;
    // Removed after, whoever won: the target is the wrapper's own stdout, which a --watch
    // wrapper keeps for every child it starts.
    let onDrain = (): void => undefined;
    const resumed = new Promise<void>((resolve) => (onDrain = resolve));
    held.once('drain', onDrain);
    await Promise.race([drained, resumed]);
    held.off('drain', onDrain);
  }
}

function pipeOutput(child: ChildProcess, filters: OutputFilters, relayed: { bytes: number }): Promise<void> {
  const ends = [
    relay(child.stdout!, filters.stdout, filters.out, child, relayed),
    relay(child.stderr!, filters.stderr, filters.err, child, relayed),
  ];
  return Promise.all(ends).then(() => undefined);
}

function relay(source: NodeJS.ReadableStream & { destroy(): void }, filter: NodeJS.ReadWriteStream, target: Writable, child: ChildProcess, relayed: { bytes: number }): Promise<void> {
  return new Promise((resolve) => {
    let readerGone = false;
    // Our reader went away (`... --mask -- yes | head -1`). Without --mask the child's next write
    // would get SIGPIPE (and EPIPE): give it the same. Our end of the pipe is a socket, whose
    // close alone would answer ECONNRESET, so the signal is sent first.
    // A full disk (or quota, or size limit) fails that write only, as it would the child's own
    // write without --mask: the child runs on and later output goes through once there is room.
    const onTargetError = (error: NodeJS.ErrnoException): void => {
      if (WRITE_FAILED_ONLY.has(error.code ?? '')) return;
      readerGone = true;
      // Held for a drain that will never come: let the child's output flow to the SIGPIPE below.
      filter.resume();
      done();
    };
    // A reader slower than the child (`--mask -- pg_dump | gzip`, a busy `logger`) holds the
    // child as it would without --mask, its writes blocking on a full pipe: without this, every
    // byte it wrote waited in the wrapper's memory (gigabytes in seconds for `yes`).
    const onDrain = (): void => {
      filter.resume();
    };
    // The target is the wrapper's own stdout or stderr, which outlives the child: under --watch a
    // listener left on it per child kept every child, its pipes and its values (the mask's
    // needles) for the life of the wrapper, and Node warned of a leak after ten.
    const done = (): void => {
      target.off('error', onTargetError);
      target.off('drain', onDrain);
      resolve();
    };
    source.pipe(filter);
    // Do not end our own stdout/stderr: the wrapper may still log after the child is done.
    filter.on('data', (chunk: Buffer) => {
      if (readerGone) return;
      relayed.bytes += chunk.length;
      // A write that failed (a full disk) also answers false, with no drain to follow.
      if (!target.write(chunk) && target.writableNeedDrain) filter.pause();
    });
    filter.once('end', done);
    filter.once('error', done);
    target.on('error', onTargetError);
    target.on('drain', onDrain);
    source.on('data', () => {
      if (!readerGone) return;
      source.unpipe(filter);
      try {
        child.kill('SIGPIPE');
      } catch {
        // Already gone.
      }
      source.destroy();
    });
  });
}
