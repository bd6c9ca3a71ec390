// The README's first quick-start command must keep working: run the demo as a user would.
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

it('npm run demo runs every step as expected and prints no secret value', async () => {
  const result = await execa('node', ['examples/demo.mjs'], { cwd: ROOT, reject: false, all: true });
  expect(result.exitCode, result.all).toBe(0);
  expect(result.all).toContain('demo finished: every step behaved as expected');
  expect(result.all).toContain('legacy-app: received 3 secret(s) from the environment');
  // The commands shown can be pasted into a shell: globs quoted, as the README writes them.
  expect(result.all).toContain("$ run-with-secrets -e demo -k 'SERVICE_B_*' -- node examples/legacy-app.js SERVICE_B_");
  for (const value of ['demo-password', 'demo-token-0123456789', 'not-a-real-key', 'demo-secret-of-another-service']) {
    expect(result.all).not.toContain(value);
  }
}, 60_000);
