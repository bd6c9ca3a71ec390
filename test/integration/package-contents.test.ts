// What `npm pack` would publish: the README links to examples/, and package.json says MIT, so
// both the examples and the LICENSE must be in the package.
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
}, 60_000);
