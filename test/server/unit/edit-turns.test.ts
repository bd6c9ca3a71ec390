// When the admin API's secret edits run: in order within an environment, side by side across
// environments, and no more than a few environments at once.
import { describe, expect, it } from 'vitest';
import { EditTurns } from '../../../src/server/store/edit-turns.js';

/** An edit that runs until `finish` is called; `started` says whether it began. */
function heldEdit(log: string[], name: string, outcome: 'ok' | 'fail' = 'ok'): { edit: () => Promise<string>; finish(): void; started(): boolean } {
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let started = false;
  return {
    edit: async () => {
      started = true;
      log.push(`${name} in`);
      await finished;
      log.push(`${name} out`);
      if (outcome === 'fail') throw new Error(`${name} failed`);
      return name;
    },
    finish: () => finish(),
    started: () => started,
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('EditTurns', () => {
  it('runs the edits of one environment one after another, in order, the next one after a failure too', async () => {
    const turns = new EditTurns(4);
    const log: string[] = [];
    const [a, b, c] = [heldEdit(log, 'a', 'fail'), heldEdit(log, 'b'), heldEdit(log, 'c')];
    const runs = [turns.run('production', a.edit), turns.run('production', b.edit), turns.run('production', c.edit)];
    await settle();
    expect(log).toEqual(['a in']);
    a.finish();
    await expect(runs[0]).rejects.toThrow('a failed');
    await settle();
    expect(log).toEqual(['a in', 'a out', 'b in']);
    c.finish();
    b.finish();
    expect(await Promise.all(runs.slice(1))).toEqual(['b', 'c']);
    expect(log).toEqual(['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
  });

  it('runs an edit of another environment while one waits', async () => {
    const turns = new EditTurns(4);
    const log: string[] = [];
    const [waits, other] = [heldEdit(log, 'production'), heldEdit(log, 'staging')];
    const waiting = turns.run('production', waits.edit);
    const answered = turns.run('staging', other.edit);
    await settle();
    other.finish();
    expect(await answered).toBe('staging');
    expect(waits.started() && !log.includes('production out')).toBe(true);
    waits.finish();
    await waiting;
  });

  it('runs no more than its bound of environments at once; the next in line takes the first turn that ends', async () => {
    const turns = new EditTurns(2);
    const log: string[] = [];
    const edits = ['a', 'b', 'c', 'd'].map((name) => heldEdit(log, name));
    const runs = edits.map((edit, i) => turns.run(`env-${i}`, edit.edit));
    await settle();
    expect(edits.map((edit) => edit.started())).toEqual([true, true, false, false]);
    edits[1]?.finish();
    await runs[1];
    await settle();
    expect(edits.map((edit) => edit.started())).toEqual([true, true, true, false]);
    for (const edit of edits) edit.finish();
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c', 'd']);
  });
});
