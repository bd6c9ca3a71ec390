// Fourth build step: the V8 code caches that dist/cli/loader.cjs (build/cli-loader.cjs) loads the
// CLI through. Runs in a process of its own, so that no other code shares the V8 state the
// caches record: the CLI is loaded through the loader and warmed with what a local run does
// (a run with env injection, one with fd injection, a dry run), then each file it compiled gets
// FILE.cache: a header, a copy of the source, V8's data. Best effort: a machine that cannot make
// them (no /dev/shm, no `true` to run) still builds, and says why.
'use strict';
const { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const dist = join(__dirname, '..', 'dist');
for (const dir of [dist, join(dist, 'cli')]) {
  for (const name of readdirSync(dir)) if (name.endsWith('.cjs.cache')) rmSync(join(dir, name));
}

const loader = require(join(dist, 'cli', 'loader.cjs'));
const work = mkdtempSync(join(tmpdir(), 'rws-cache-cli-'));
const envFile = join(work, '.env');
writeFileSync(envFile, 'WARM_A=one\nWARM_B="two words"\n', { mode: 0o600 });

async function warm() {
  const { main } = loader.load(join(dist, 'cli', 'main.cjs'));
  const write = process.stdout.write;
  process.stdout.write = () => true; // the dry run's lines are not the build's output
  try {
    for (const args of [['--env-file', envFile, '--', 'true'], ['--env-file', envFile, '--inject-as', 'fd', '--', 'true'], ['--env-file', envFile, '--dry-run']]) {
      process.argv = [process.argv[0], 'run-with-secrets', ...args];
      process.exitCode = undefined;
      await main();
      if (process.exitCode !== 0 && process.exitCode !== undefined) throw new Error(`run-with-secrets ${args.join(' ')} exited ${process.exitCode}`);
    }
  } finally {
    process.stdout.write = write;
  }
}

warm()
  .then(() => {
    for (const { filename, source, script } of loader.compiled) {
      // Written whole and then renamed: a reader never sees half a cache.
      const data = script.createCachedData();
      writeFileSync(`${filename}.cache.tmp`, Buffer.concat([Buffer.from(loader.cacheHeader(source.length, data.length)), source, data]), { mode: 0o644 });
      renameSync(`${filename}.cache.tmp`, `${filename}.cache`);
    }
    process.exitCode = 0;
  })
  .catch((error) => {
    process.stderr.write(`build/cache-cli.cjs: no code cache for the CLI (${error.code ?? error.message}); runs compile from source\n`);
    process.exitCode = 0;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
