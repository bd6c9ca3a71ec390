import { describe, expect, it } from 'vitest';
import { parseFast } from '../../../src/cli/options.js';
import { parseWithYargs } from '../../../src/cli/yargs-cli.js';

// The fast parser and yargs read one option table; for every argv the fast path accepts, both
// must produce the same values and command.
const CASES: string[][] = [
  ['--env-file', 'a.env', '--', 'node', 'app.js', '--env-file', 'x'],
  ['--env-file', 'a.env', '--env-file', 'b.env', '-k', 'A_*', '-k', 'B?', '--key', 'C', '--', 'cmd'],
  ['--env-file=a.env', '--key-pattern=X*', '--inject-as', 'file', '--file-format', 'json', '--file-var', 'F', '--', 'cmd', '-v'],
  ['--env-file', 'a.env', '--keep-env', 'AWS_*', '--pristine', '--allow-name', 'PATH', '--mask', '--kill-after', '5', '--', 'x'],
  ['--env-file', 'a.env', '-q', '--log-format', 'json', '--dry-run'],
  ['--env-file', 'a.env', '-v', '--', 'x'],
];

describe('fast parser and yargs agree', () => {
  it.each(CASES)('%j', async (...argv) => {
    const fast = parseFast(argv);
    expect(fast.ok).toBe(true);
    const slow = await parseWithYargs(argv, '0.0.0');
    expect(slow.kind).toBe('args');
    if (!fast.ok || slow.kind !== 'args') return;
    expect(slow.args.command).toEqual(fast.args.command);
    expect(slow.args.words).toEqual([]);
    for (const [name, value] of Object.entries(fast.args.values)) {
      expect(slow.args.values[name], name).toEqual(value);
    }
  });

  it('leaves help, version, completion, unknown options and stray words to yargs', () => {
    for (const argv of [['--help'], ['-h'], ['--version'], ['completion'], ['--bogus', '--', 'x'], ['--env-file', 'a', 'node'], ['--no-mask', '--', 'x']]) {
      expect(parseFast(argv).ok, JSON.stringify(argv)).toBe(false);
    }
  });

  it('never reads options after --', () => {
    const fast = parseFast(['--env-file', 'a', '--', '--help', '--env-file', 'b']);
    expect(fast.ok && fast.args.values['env-file']).toEqual(['a']);
    expect(fast.ok && fast.args.command).toEqual(['--help', '--env-file', 'b']);
  });
});
