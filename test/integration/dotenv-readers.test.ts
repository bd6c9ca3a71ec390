// The dotenv secrets file must mean the same to every reader a legacy app may use. Each hostile
// value is written on its own into its own file, and each file goes through the real readers:
// npm dotenv, Node's util.parseEnv, python-dotenv, Ruby dotenv and godotenv (Debian packages,
// installed by .ci/run).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { parse } from 'dotenv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { serializeDotenv } from '../../src/inject/file-format.js';
import { makeRuntimeDir, removeDir, ROOT } from '../helpers/cli.js';
import { HOSTILE_DOTENV } from '../helpers/hostile-values.js';

type Values = Record<string, string | null> | { error: string };
type Reader = (files: string[]) => Values[];

const READERS_DIR = join(ROOT, 'test/fixtures/readers');
const dotenvParse = parse as (text: string) => Record<string, string>;
let dir: string;
let godotenvBinary: string;

const run = (command: string, args: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' }): Values[] =>
  JSON.parse(execFileSync(command, args, { env, maxBuffer: 64 * 1024 * 1024 }).toString()) as Values[];

const READERS: Record<string, Reader> = {
  'npm dotenv': (files) => files.map((file) => dotenvParse(readText(file))),
  'node util.parseEnv': (files) => files.map((file) => parseEnv(readText(file)) as Record<string, string>),
  // Debian's python3, not another python first on PATH: that is the one with python3-dotenv.
  'python-dotenv': (files) => run('/usr/bin/python3', [join(READERS_DIR, 'python-dotenv-read.py'), ...files]),
  'ruby dotenv': (files) => run('ruby', [join(READERS_DIR, 'ruby-dotenv-read.rb'), ...files]),
  godotenv: (files) => run(godotenvBinary, files),
};

const texts = new Map<string, string>();
function readText(file: string): string {
  return texts.get(file)!;
}

function writeFile(name: string, text: string): string {
  const file = join(dir, `${name}.env`);
  writeFileSync(file, text, { mode: 0o600 });
  texts.set(file, text);
  return file;
}

beforeAll(() => {
  dir = makeRuntimeDir();
  godotenvBinary = join(dir, 'godotenv-read');
  // Debian installs godotenv's source as a GOPATH package; build the small reader against it.
  execFileSync('go', ['build', '-o', godotenvBinary, join(READERS_DIR, 'godotenv-read.go')], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: join(dir, 'go-cache'), GOFLAGS: '' },
  });
});

afterAll(() => removeDir(dir));

describe('the dotenv file format against every reader', () => {
  const carried = HOSTILE_DOTENV.filter(([, , expect]) => expect === 'carried');
  const refused = HOSTILE_DOTENV.filter(([, , expect]) => expect === 'refused');

  it.each(Object.keys(READERS))('%s reads every carried value back exactly, file by file', (readerName) => {
    const files = carried.map(([name, value]) => writeFile(`one-${name}`, serializeDotenv(new Map([[name, value]]), dotenvParse)));
    const results = READERS[readerName]!(files);
    expect(results).toHaveLength(carried.length);
    carried.forEach(([name, value], index) => {
      expect(results[index], `${readerName}: ${name}`).toEqual({ [name]: value });
    });
  });

  it.each(Object.keys(READERS))('%s reads all carried values back exactly from one file', (readerName) => {
    const text = serializeDotenv(new Map(carried.map(([name, value]) => [name, value])), dotenvParse);
    const [result] = READERS[readerName]!([writeFile('all', text)]);
    expect(result).toEqual(Object.fromEntries(carried.map(([name, value]) => [name, value])));
  });

  it.each(refused.map(([name, value]) => [name, value]))('refuses %s, naming the key and suggesting json or shell, never quoting the value', (name, value) => {
    let failure: unknown;
    try {
      serializeDotenv(new Map([[name, value]]), dotenvParse);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(FormatError);
    const { message, hint, code } = failure as FormatError;
    expect(code).toBe('RWS_FORMAT_UNSUPPORTED');
    expect(message).toContain(name);
    expect(hint).toBe('use --file-format json or --file-format shell');
    if (value.length > 1) expect(message).not.toContain(value);
  });

  it('refuses only values that some reader really reads differently in both quotings', () => {
    // Proof that each refusal is needed: both spellings the writer could use are misread by at
    // least one reader (or the value holds a line break, which Ruby dotenv cannot carry at all).
    const spellings = refused.flatMap(([name, value]) => [`${name}='${value}'`, `${name}="${value}"`].map((line) => ({ name, value, file: writeFile(`try-${name}-${line.charCodeAt(name.length + 1)}`, `${line}\n`) })));
    const results = Object.values(READERS).map((reader) => reader(spellings.map((spelling) => spelling.file)));
    for (const [name, value] of refused) {
      const misread = spellings.map((spelling, index) => ({ spelling, index })).filter(({ spelling }) => spelling.name === name).every(({ index }) =>
        results.some((perReader) => JSON.stringify(perReader[index]) !== JSON.stringify({ [name]: value })),
      );
      expect(misread, name).toBe(true);
    }
  });
});
