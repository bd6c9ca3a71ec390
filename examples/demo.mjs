#!/usr/bin/env node
// `npm run demo`: runs the bundled legacy apps under run-with-secrets with the DEMO secrets of
// examples/demo.env, in env, file and fd mode. Nothing to set up; nothing is left behind.
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'run-with-secrets.js');
const envFile = join(here, 'demo.env');
// git does not keep file modes beyond the run bit; a fresh clone makes demo.env 0644.
chmodSync(envFile, 0o600);

const steps = [
  ['env mode: the DEMO_* secrets become environment variables', ['--env-file', envFile, '-k', 'DEMO_*', '--', process.execPath, join(here, 'legacy-app.js')]],
  ['file mode: a 0600 file in a private RAM-backed directory, removed on exit', ['--env-file', envFile, '-k', 'DEMO_*', '--inject-as', 'file', '--', process.execPath, join(here, 'file-app.js')]],
  ['fd mode: the file is unlinked before the app starts; it reads /dev/fd/3', ['--env-file', envFile, '-k', 'DEMO_*', '--inject-as', 'fd', '--', process.execPath, join(here, 'file-app.js')]],
  ['dry run: names only, nothing started', ['--env-file', envFile, '-k', 'DEMO_*', '--dry-run']],
];
let failed = 0;
for (const [title, args] of steps) {
  console.log(`\n=== ${title}\n$ run-with-secrets ${args.map((arg) => (arg.startsWith('/') ? arg.replace(`${dirname(here)}/`, '') : arg)).join(' ')}`);
  const result = spawnSync(bin, args, { stdio: 'inherit', env: { ...process.env, RWS_DEMO_CREDENTIAL: 'never-reaches-the-app' } });
  if (result.status !== 0) failed++;
}
process.exitCode = failed === 0 ? 0 : 1;
