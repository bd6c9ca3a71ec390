// The run's cleanup: a resource that arrives after it has run (a step that was on its way when a
// stop signal ended the run) is released before `add` returns, synchronously: the wrapper may die
// of that signal before any promise settles.
import { describe, expect, it } from 'vitest';
import { Cleanup } from '../../../src/process/cleanup.js';

function resource(log: string[], name: string) {
  return {
    dispose: async () => void log.push(`${name} dispose`),
    disposeSync: () => void log.push(`${name} disposeSync`),
  };
}

describe('Cleanup', () => {
  it('releases what was added, last first', async () => {
    const log: string[] = [];
    const cleanup = new Cleanup();
    cleanup.add(resource(log, 'a'));
    cleanup.add(resource(log, 'b'));
    await cleanup.run();
    expect(log).toEqual(['b dispose', 'a dispose']);
  });

  it('releases a late resource at once, synchronously', async () => {
    const log: string[] = [];
    const cleanup = new Cleanup();
    await cleanup.run();
    cleanup.add(resource(log, 'late'));
    expect(log).toEqual(['late disposeSync']);
    await cleanup.run();
    expect(log).toEqual(['late disposeSync']);
  });

  it('releases nothing it was told to forget (released earlier by its owner)', async () => {
    const log: string[] = [];
    const cleanup = new Cleanup();
    const early = resource(log, 'early');
    cleanup.add(resource(log, 'a'));
    cleanup.add(early);
    cleanup.forget(early);
    cleanup.forget(early);
    await cleanup.run();
    expect(log).toEqual(['a dispose']);
  });

  it('falls back to the synchronous release when the other fails', async () => {
    const log: string[] = [];
    const cleanup = new Cleanup();
    cleanup.add({ dispose: () => Promise.reject(new Error('EBUSY')), disposeSync: () => void log.push('disposeSync') });
    await cleanup.run();
    expect(log).toEqual(['disposeSync']);
  });
});
