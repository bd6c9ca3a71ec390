import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { refuseOversizedEnvironment, softStackLimit } from '../../../src/inject/env-limits.js';

/** An environment of values under 128 KiB each whose strings and pointers come to `bytes` with argv ['/bin/true']. */
function environmentOf(bytes: number): Record<string, string> {
  const env: Record<string, string> = {};
  // What refuseOversizedEnvironment counts besides the variables: the path at PATH_MAX, argv, pointers.
  let left = bytes - 4096 - ('/bin/true'.length + 1) - 8;
  for (let i = 0; left > 0; i++) {
    const name = `V${String(i).padStart(4, '0')}`;
    const overhead = name.length + 2 + 8;
    const size = Math.max(1, Math.min(100_000, left - overhead));
    env[name] = 'x'.repeat(size);
    left -= overhead + size;
  }
  return env;
}

describe('refuseOversizedEnvironment', () => {
  it('refuses what the kernel would refuse at exec, and passes what it would run', () => {
    const stack = softStackLimit();
    expect(stack).toBeDefined();
    const limit = Math.max(Math.min(6 * 1024 * 1024, Math.floor(stack! / 4)), 128 * 1024);
    const over = environmentOf(limit + 16 * 1024);
    const under = environmentOf(limit - 16 * 1024);
    expect(() => refuseOversizedEnvironment(over, ['/bin/true'])).toThrow(expect.objectContaining({ code: 'RWS_ENV_TOO_LARGE' }));
    expect(() => refuseOversizedEnvironment(under, ['/bin/true'])).not.toThrow();
    // The real thing, from this process (whose stack limit the children inherit).
    expect(spawnSync('/bin/true', [], { env: over }).error).toMatchObject({ code: 'E2BIG' });
    const ran = spawnSync('/bin/true', [], { env: under });
    expect(ran.error).toBeUndefined();
    expect(ran.status).toBe(0);
  });

  it('says the sizes and the way out, never a value', () => {
    const env = { SECRET_A: 'secret-value-'.repeat(9000), SECRET_B: 'secret-value-'.repeat(9000) };
    try {
      refuseOversizedEnvironment(env, ['app'], 512 * 1024);
      throw new Error('not refused');
    } catch (error) {
      expect((error as Error).message).toMatch(/^the child's environment and arguments together are \d+ KiB, more than the 128 KiB the system passes to a program \(E2BIG\)$/);
      expect((error as { hint?: string }).hint).toBe('use --inject-as file or --inject-as fd for large secrets');
      expect(JSON.stringify(error)).not.toContain('secret-value');
    }
  });

  it('reads the soft stack limit from /proc/self/limits, and nothing from what it cannot read', () => {
    const line = (soft: string) => () => `Limit                     Soft Limit           Hard Limit           Units\nMax stack size            ${soft}              unlimited            bytes\n`;
    expect(softStackLimit(line('8388608'))).toBe(8388608);
    expect(softStackLimit(line('unlimited'))).toBe(Infinity);
    for (const bad of ['', '-1', '0', '8e6', 'lots', '99999999999999999999']) expect(softStackLimit(line(bad))).toBeUndefined();
    expect(softStackLimit(() => 'garbage\n\0\n')).toBeUndefined();
    expect(
      softStackLimit(() => {
        throw Object.assign(new Error('no /proc'), { code: 'ENOENT' });
      }),
    ).toBeUndefined();
    // With no limit to read, nothing is refused (the exec says E2BIG itself if it must).
    expect(() => refuseOversizedEnvironment({ A: 'x'.repeat(100_000) }, ['app'], undefined)).not.toThrow();
  });
});
