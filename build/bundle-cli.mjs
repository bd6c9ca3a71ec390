// Third build step: the wrapper's own modules as one ES module for the hot path, plus one chunk
// per lazily loaded part (yargs front end, SOPS, vault source, subcommands...). Loading tsc's
// ≈25 files one by one costs ≈8 ms of CPU on every run (bench/startup: each cron run pays it).
// Modules the vault client bundle imports from outside itself (errors.js, glob.js, names.js)
// stay separate files, imported by both, so that our error classes keep one identity: a
// VaultError thrown by the client must still be an RwsError to the CLI.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const staging = join(dist, '.cli-bundle');

const client = readFileSync(join(dist, 'vault-client/index.js'), 'utf8');
const shared = new Set([...client.matchAll(/from "\.\.\/([\w-]+\.js)"/g)].map((match) => join(dist, match[1])));
shared.add(join(dist, 'vault-client/index.js'));

rmSync(staging, { recursive: true, force: true });
await build({
  input: join(dist, 'cli/main.js'),
  platform: 'node',
  logLevel: 'warn',
  // Shared modules by absolute id, written back as paths relative to the output (dist/cli).
  makeAbsoluteExternalsRelative: true,
  external: (id, _importer, isResolved) => id.startsWith('node:') || (isResolved ? shared.has(id) : !id.startsWith('.') && !id.startsWith('/')),
  output: { dir: staging, format: 'esm', entryFileNames: 'main.js', chunkFileNames: '[name]-[hash].js' },
  write: true,
});
// Staged first: a failed bundle leaves tsc's working dist/cli/main.js.
mkdirSync(join(dist, 'cli'), { recursive: true });
for (const name of readdirSync(join(dist, 'cli'))) if (/-[\w-]{8}\.js$/.test(name)) rmSync(join(dist, 'cli', name));
for (const name of readdirSync(staging)) renameSync(join(staging, name), join(dist, 'cli', name));
rmSync(staging, { recursive: true, force: true });
const main = readFileSync(join(dist, 'cli/main.js'), 'utf8');
if (!main.includes('from "../errors.js"')) throw new Error('dist/cli/main.js must import ../errors.js, not a copy of it');
