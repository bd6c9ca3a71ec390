// --watch as an operator runs it for weeks: many restarts must leave the wrapper as it was (what
// it holds in memory, its descriptors, its rws-* directories). Real files, real children; the
// wrapper's heap is read through a heap snapshot taken inside it (test/fixtures/watch/heap-probe.cjs).
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRuntimeDir, removeDir, ROOT, wrapperDirs, writeEnvFile } from '../helpers/cli.js';
import { startWatch, until, ups, WATCH_CHILD } from '../helpers/watch.js';

const PROBE = join(ROOT, 'test/fixtures/watch/heap-probe.cjs');

let dir: string;
let runtimeDir: string;

beforeAll(() => {
  dir = makeRuntimeDir();
  runtimeDir = makeRuntimeDir();
});

afterAll(() => {
  removeDir(dir);
  removeDir(runtimeDir);
});

/** How many objects of each constructor named in `names` the snapshot holds. */
function countObjects(snapshotPath: string, names: readonly string[]): Record<string, number> {
  const snapshot = JSON.parse(readFileSync(snapshotPath, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snapshot.snapshot.meta.node_fields;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf('object');
  const counts: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
  for (let at = 0; at < snapshot.nodes.length; at += fields.length) {
    if (snapshot.nodes[at + typeAt] !== objectType) continue;
    const name = snapshot.strings[snapshot.nodes[at + nameAt]!]!;
    if (name in counts) counts[name]!++;
  }
  return counts;
}

describe('run-with-secrets --watch over many restarts', () => {
  // File injection leaves a directory per child; --mask pipes each child's output through filters
  // that hold its values; fd injection keeps a descriptor per child.
  it.each([
    ['--inject-as file', ['--inject-as', 'file'], 1],
    ['--inject-as fd --mask', ['--inject-as', 'fd', '--mask'], 0],
  ])('sixty restarts with %s: the wrapper holds one child and one secrets file, not every one it had; its descriptors and rws-* directories are as after the first', async (_name, flags, directories) => {
    const envFile = writeEnvFile(dir, `app-${directories}.env`, 'A=v0\n');
    const record = join(dir, `record-${directories}.jsonl`);
    const probeDir = mkdtempSync(join(dir, 'probe-'));
    const env = { WATCH_RECORD: record, WATCH_NAMES: 'A', NODE_OPTIONS: `--require ${PROBE}`, HEAP_PROBE_DIR: probeDir };
    const wrapper = startWatch(['--env-file', envFile, '--watch', '--debounce', '0', ...flags, '--keep-env', 'WATCH_*', '--', process.execPath, WATCH_CHILD], runtimeDir, env);
    try {
      await until('the first child', () => ups(record)[0]);
      writeFileSync(envFile, 'A=v1\n');
      await until('the first restart', () => ups(record)[1]);
      const fdsAfterOne = readdirSync(`/proc/${wrapper.pid}/fd`).length;
      const restarts = 60;
      for (let index = 2; index <= restarts; index++) {
        writeFileSync(envFile, `A=v${index}\n`);
        await until(`restart ${index}`, () => ups(record)[index]);
      }
      expect(ups(record).map((event) => event.seen?.A)).toEqual(Array.from({ length: restarts + 1 }, (_, index) => `v${index}`));
      expect(wrapperDirs(runtimeDir), 'the running child\'s directory, if it has one').toHaveLength(directories);
      expect(readdirSync(`/proc/${wrapper.pid}/fd`).length).toBe(fdsAfterOne);

      writeFileSync(join(probeDir, 'take'), '');
      const snapshot = await until('the heap snapshot', () => existsSync(join(probeDir, 'heap.heapsnapshot')) && join(probeDir, 'heap.heapsnapshot'), 30_000);
      // The running child and its file; every earlier one was stopped and removed, and is garbage
      // (but for the child just before, which a suspended watch loop may still hold in a register).
      const held = countObjects(snapshot, ['ChildProcess', 'SecretsFile', 'MaskStream']);
      expect(held.ChildProcess, JSON.stringify(held)).toBeLessThanOrEqual(2);
      expect(held.SecretsFile, JSON.stringify(held)).toBe(1);
      // Two per child (stdout, stderr), each holding that child's values.
      expect(held.MaskStream, JSON.stringify(held)).toBeLessThanOrEqual(flags.includes('--mask') ? 4 : 0);
      expect(wrapper.stderrText()).not.toContain('MaxListenersExceededWarning');

      process.kill(wrapper.pid!, 'SIGTERM');
      await wrapper;
      expect(wrapperDirs(runtimeDir)).toEqual([]);
    } finally {
      // A failed test leaves no wrapper behind, nor (SIGTERM: it stops it) its child's group.
      wrapper.kill('SIGTERM');
    }
  }, 90_000);
});
