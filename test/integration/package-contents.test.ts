// What `npm pack` would publish: the README links to examples/, and package.json says MIT, so
// both the examples and the LICENSE must be in the package; `serve --console` needs the console's
// built files, and nothing of the console's sources or of its bundled packages.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

it('the npm package holds LICENSE, the examples (the cron script executable) and no code cache', async () => {
  const result = await execa('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: ROOT });
  const [pack] = JSON.parse(result.stdout) as Array<{ files: Array<{ path: string; mode: number }> }>;
  const files = new Map(pack!.files.map((file) => [file.path, file.mode]));
  expect(files.has('LICENSE')).toBe(true);
  for (const path of ['examples/cron/backup-with-secrets.sh', 'examples/cron/crontab', 'examples/systemd/legacy-app.service', 'examples/kubernetes/cronjob.yaml', 'examples/local-dev/README.md']) {
    expect(files.has(path), path).toBe(true);
  }
  expect(files.get('examples/cron/backup-with-secrets.sh')! & 0o111).not.toBe(0);
  expect([...files.keys()].some((path) => path.endsWith('.cache'))).toBe(false);
  for (const path of ['dist/console/index.html', 'dist/console/app.js', 'dist/console/app.css', 'dist/console/icon.svg', 'dist/server/console/console.js']) expect(files.has(path), path).toBe(true);
  expect([...files.keys()].some((path) => path.startsWith('web/') || path.startsWith('docs/'))).toBe(false);
  // Preact and htm are bundled into app.js at build time: the installed package depends on neither.
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const name of ['preact', 'htm', 'playwright-core']) expect(manifest.dependencies).not.toHaveProperty(name);
}, 60_000);
