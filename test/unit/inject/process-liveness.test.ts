// Whether a pid still stands for a process that can act: a real zombie, made by a parent that
// never reaps (`sh -c 'sleep 0 & exec sleep 5'`: after the exec, sleep is the parent and never waits).
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { processIsAlive, processIsRunning } from '../../../src/inject/placement.js';
import { parseProcStat } from '../../../src/process/proc-stat.js';

const state = (pid: number): string | undefined => parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.state;

describe('processIsRunning', () => {
  it('is true for a running process, false for a zombie (which kill(0) still finds) and for a pid that is gone', async () => {
    expect(processIsRunning(process.pid)).toBe(true);
    const parent = execa('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], { reject: false });
    try {
      const zombie = await new Promise<number>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
      for (let tries = 0; state(zombie) !== 'Z' && tries < 200; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(state(zombie)).toBe('Z');
      expect(processIsAlive(zombie)).toBe(true);
      expect(processIsRunning(zombie)).toBe(false);
    } finally {
      parent.kill('SIGKILL');
      await parent;
    }
    expect(processIsRunning(parent.pid!)).toBe(false);
  });
});
