import { describe, expect, it } from 'vitest';
import { processStartMs } from '../../../src/process/start-time.js';

describe('processStartMs', () => {
  it('is when this process started, to within the boot time\'s whole second', () => {
    const started = processStartMs(process.pid)!;
    expect(started).toBeLessThanOrEqual(Date.now() + 1000);
    expect(started).toBeGreaterThan(Date.now() - process.uptime() * 1000 - 2000);
  });

  it('is undefined for a pid that names no process', () => {
    expect(processStartMs(2 ** 22 + 1)).toBeUndefined();
  });
});
