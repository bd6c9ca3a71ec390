import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../../src/errors.js';
import { readShellExports, serialize, serializeDotenv, serializeJson, serializeShell } from '../../../src/inject/file-format.js';

const HOSTILE: Array<[string, string]> = [
  ['SINGLE', "it's"],
  ['DOUBLE', 'say "hi"'],
  ['BACKTICK', 'run `id`'],
  ['HASH', 'a # not a comment'],
  ['HASH_START', '#start'],
  ['DOLLAR', '$HOME ${HOME} $(id) `id`'],
  ['EQUALS', 'a=b=c='],
  ['BACKSLASH', 'C:\\path\\to\\n\\t\\\\'],
  ['NEWLINES', 'line1\nline2\n\n'],
  ['CR', 'a\rb\r\n'],
  ['SPACES', '  padded  '],
  ['TABS', '\tx\t'],
  ['UNICODE', 'héllo wörld ✓ 日本 \u2028 😀'],
  ['EMPTY', ''],
  ['EXPORT', 'export X=1'],
  ['LONG', 'x'.repeat(100_000)],
  ['__proto__', 'polluted?'],
  ['constructor', 'c'],
];

const dotenvParse = parse as (text: string) => Record<string, string>;

/** Sources the file in a real shell and reports the exported values as JSON through node. */
function readBackWithShell(shell: string, text: string, names: string[]): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'rws-shell-'));
  try {
    const file = join(dir, 'secrets.sh');
    writeFileSync(file, text, { mode: 0o600 });
    const report = 'const o={};for(const k of process.argv.slice(1))o[k]=process.env[k];process.stdout.write(JSON.stringify(o))';
    // stdin not a pipe: bash would take a socket for sshd and read ~/.bashrc.
    const out = execFileSync(shell, ['-c', `. "$0"; exec node -e '${report}' "$@"`, file, ...names], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.toString()) as Record<string, string>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('dotenv format', () => {
  it('every value it accepts reads back byte-exact through dotenv.parse, one at a time', () => {
    for (const [name, value] of HOSTILE) {
      let text: string;
      try {
        text = serializeDotenv(new Map([[name, value]]), dotenvParse);
      } catch (error) {
        expect(error).toBeInstanceOf(FormatError);
        continue;
      }
      const back = dotenvParse(text);
      if (name === '__proto__') continue; // dotenv itself assigns into a plain object: see the JSON test
      expect(back[name], name).toBe(value);
    }
  });

  it('carries the values of the common subset together, and the file as a whole parses back exactly', () => {
    const carried = new Map(HOSTILE.filter(([name]) => !['CR', 'NEWLINES', 'DOLLAR', 'BACKSLASH', '__proto__'].includes(name)));
    const text = serializeDotenv(carried, dotenvParse);
    expect(dotenvParse(text)).toEqual(Object.fromEntries(carried));
  });

  it('writes single quotes, and double quotes only for a value holding a single quote', () => {
    expect(serializeDotenv(new Map([['A', 'a # $x `y`'], ['B', "it's"]]), dotenvParse)).toBe("A='a # $x `y`'\nB=\"it's\"\n");
  });

  it.each([
    ["it's # `x` \"y\""],
    ["a' #\"`"],
    ['#\'"`'],
    ['x\\n\r'],
  ])('refuses %j with the key named and another format suggested, never altering it', (value) => {
    expect(() => serializeDotenv(new Map([['MIXED', value]]), dotenvParse)).toThrowError(
      expect.objectContaining({ code: 'RWS_FORMAT_UNSUPPORTED', message: expect.stringContaining('MIXED'), hint: expect.stringContaining('--file-format') }),
    );
    try {
      serializeDotenv(new Map([['MIXED', value]]), dotenvParse);
    } catch (error) {
      expect((error as Error).message).not.toContain(value);
    }
  });

  it('an empty set is an empty file', async () => {
    expect(await serialize(new Map(), 'dotenv')).toBe('');
  });
});

describe('shell format', () => {
  it.each(['bash', 'sh'])('every value reads back exactly through `. file` in %s', (shell) => {
    const values = new Map(HOSTILE.filter(([name]) => /^[A-Z_]+$/.test(name) && name !== '__proto__'));
    const text = serializeShell(values);
    expect(text.split('\n')[0]).toMatch(/^export SINGLE='it'\\''s'$/);
    expect(readBackWithShell(shell, text, [...values.keys()])).toEqual(Object.fromEntries(values));
  });
});

describe('shell format and the names the shell sets itself', () => {
  it('dash would die printing the value of an exported OPTIND: such names are refused, never quoted', () => {
    expect(() => readBackWithShell('dash', "export OPTIND='hunter2'\n", ['OPTIND'])).toThrowError(/Illegal number: hunter2/);
    for (const name of ['OPTIND', 'PPID', 'UID', 'SHLVL', 'BASH_XTRACEFD', '_']) {
      let failure: unknown;
      try {
        serializeShell(new Map([['OK', 'x'], [name, 'hunter2']]));
      } catch (error) {
        failure = error;
      }
      expect(failure, name).toBeInstanceOf(FormatError);
      expect(failure).toMatchObject({ code: 'RWS_FORMAT_UNSUPPORTED', message: expect.stringContaining(name), hint: 'use --file-format json' });
      expect((failure as Error).message).not.toContain('hunter2');
    }
  });

  it('names that only look alike are carried', () => {
    const values = new Map([['optind', 'a'], ['PPID_FILE', 'b'], ['MY_UID', 'c'], ['BASHFUL', 'd']]);
    expect(readBackWithShell('bash', serializeShell(values), [...values.keys()])).toEqual(Object.fromEntries(values));
  });
});

describe('shell format parse-back', () => {
  it('reads back every value serializeShell writes, __proto__ included', () => {
    const values = new Map(HOSTILE);
    const back = readShellExports(serializeShell(values));
    for (const [name, value] of HOSTILE) expect(back[name], name).toBe(value);
    expect(Object.keys(back)).toHaveLength(HOSTILE.length);
  });

  it.each([
    ["export A='unterminated\n"],
    ["export A='x' \n"],
    ["A='x'\n"],
    ["export A=x\n"],
    ["export 1A='x'\n"],
    ["export A='x'"],
  ])('stops at anything it did not write: %j', (text) => {
    expect(readShellExports(text)).not.toHaveProperty('A');
  });
});

describe('json format', () => {
  it('is one object that parses back exactly, __proto__ included as an own key', () => {
    const values = new Map(HOSTILE);
    const text = serializeJson(values);
    const back = JSON.parse(text) as Record<string, string>;
    expect(Object.hasOwn(back, '__proto__')).toBe(true);
    expect(back.__proto__).toBe('polluted?');
    for (const [name, value] of HOSTILE) expect(back[name]).toBe(value);
    expect(Object.keys(back)).toHaveLength(HOSTILE.length);
  });
});
