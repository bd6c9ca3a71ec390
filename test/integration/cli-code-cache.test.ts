// The wrapper as the build ships it (build/bundle-cli.mjs, build/cli-loader.cjs,
// build/cache-cli.cjs): CommonJS files loaded through V8 code caches bound to the node binary
// and the source they were made from. Every state of those caches must give the same, working
// run; only `-v` tells them apart.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, BIN, fixture, makeRuntimeDir, removeDir, ROOT, writeEnvFile } from '../helpers/cli.js';

const MAIN = 'dist/cli/main.cjs';
let runtimeDir: string;
let copies: string;
let envFile: string;

beforeAll(() => {
  runtimeDir = makeRuntimeDir();
  copies = mkdtempSync(path.join(tmpdir(), 'rws-cli-cache-'));
  envFile = writeEnvFile(runtimeDir, '.env', 'CACHE_A=cached-value\nCACHE_B="two words"\n');
});

afterAll(() => {
  if (runtimeDir) removeDir(runtimeDir);
  if (copies) rmSync(copies, { recursive: true, force: true });
});

/** A `-v` local run of `bin` through `node` (with extra Node flags) that must inject both values; returns what `-v` says of the cache. */
async function localRun(bin: string, nodeFlags: string[] = []): Promise<string | undefined> {
  const result = await execa(process.execPath, [...nodeFlags, bin, '-v', '--env-file', envFile, '--', fixture('print-env.mjs')], { reject: false, extendEnv: false, env: baseEnv(runtimeDir) });
  expect(result.exitCode, result.stderr).toBe(0);
  const env = JSON.parse(result.stdout) as Record<string, string>;
  expect([env.CACHE_A, env.CACHE_B]).toEqual(['cached-value', 'two words']);
  expect(result.stderr).not.toContain('cached-value');
  return /cli: code cache (.+)$/m.exec(result.stderr)?.[1];
}

/** The package as installed: bin, dist and package.json copied, beside the project's node_modules. */
function copyPackage(name: string): string {
  const dir = path.join(copies, name);
  for (const entry of ['bin', 'dist', 'package.json']) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  mkdirSync(path.join(dir, 'node_modules'));
  for (const entry of readdirSync(path.join(ROOT, 'node_modules'))) symlinkSync(path.join(ROOT, 'node_modules', entry), path.join(dir, 'node_modules', entry));
  return dir;
}

describe('the CLI and its code caches', () => {
  it('the build made caches this node uses for every file of a local run', async () => {
    expect(await localRun(BIN)).toMatch(/^used \(\d+ files\)$/);
  });

  it('other V8 flags: V8 refuses the caches and the run compiles from source', async () => {
    expect(await localRun(BIN, ['--no-lazy-feedback-allocation'])).toMatch(/^rejected \d+$/);
  });

  it('with another source, a cut cache or none, that file compiles from source', async () => {
    // An edit that keeps the length: V8 alone would take the cache and run the old code.
    const edited = copyPackage('edited');
    const source = readFileSync(path.join(edited, MAIN), 'utf8');
    expect(source).toContain('// dist/cli/main.js');
    writeFileSync(path.join(edited, MAIN), source.replace('// dist/cli/main.js', '// DIST/cli/main.js'));
    expect(await localRun(path.join(edited, 'bin/run-with-secrets.js'))).toMatch(/^used \d+, stale 1$|^stale 1, used \d+$/);

    // V8 aborts the process on cache data it cannot read, so a cut cache must never reach it.
    const cut = copyPackage('cut');
    const whole = readFileSync(path.join(cut, `${MAIN}.cache`));
    writeFileSync(path.join(cut, `${MAIN}.cache`), whole.subarray(0, whole.length - 100));
    expect(await localRun(path.join(cut, 'bin/run-with-secrets.js'))).toMatch(/^stale 1, used \d+$/);

    // A registry install: npm pack leaves every cache out (test/integration/package-contents.test.ts).
    const none = copyPackage('none');
    for (const dir of ['dist', 'dist/cli']) for (const file of readdirSync(path.join(none, dir))) if (file.endsWith('.cache')) rmSync(path.join(none, dir, file));
    expect(await localRun(path.join(none, 'bin/run-with-secrets.js'))).toMatch(/^absent \d+$/);
  });

  // The cached files reach ES modules through the loader's import() (yargs here; the vault client
  // and age in test/integration/vault.test.ts and sops-file.test.ts).
  it('help and usage errors import yargs from the cached files, with nothing else on stderr', async () => {
    const help = await execa(BIN, ['--help'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir) });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('Usage: run-with-secrets');
    expect(help.stderr).toBe('');
    const unknown = await execa(BIN, ['--bogus', '--', 'true'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir) });
    expect(unknown.exitCode).toBe(125);
    expect(unknown.stderr).toBe('run-with-secrets: error RWS_USAGE: Unknown argument: bogus (hint: see run-with-secrets --help)');
  });
});
