import { execa } from 'execa';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processStartTicks } from '../../../src/process/start-time.js';

describe('processStartTicks', () => {
  it('is the same for the life of a process, and later for a process started later', async () => {
    const mine = processStartTicks('self')!;
    expect(mine).toMatch(/^\d+$/);
    expect(processStartTicks(process.pid)).toBe(mine);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const later = execa('sleep', ['5']);
    try {
      expect(Number(processStartTicks(later.pid!))).toBeGreaterThan(Number(mine));
    } finally {
      later.kill('SIGKILL');
      await later.catch(() => undefined);
    }
  });

  it('reads past a command name holding ") "', async () => {
    // The kernel names a process after the file it runs: a link named so puts it in /proc/PID/stat.
    const dir = mkdtempSync(join(tmpdir(), 'rws-start-'));
    symlinkSync('/bin/sleep', join(dir, 'x) 1 2 3'));
    const odd = execa(join(dir, 'x) 1 2 3'), ['5']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    try {
      expect(processStartTicks(odd.pid!)).toMatch(/^\d+$/);
      expect(Number(processStartTicks(odd.pid!))).toBeGreaterThanOrEqual(Number(processStartTicks('self')));
    } finally {
      odd.kill('SIGKILL');
      await odd.catch(() => undefined);
      rmSync(dir, { recursive: true });
    }
  });

  it('is undefined for a pid that names no process', () => {
    expect(processStartTicks(2 ** 22 + 1)).toBeUndefined();
  });
});
