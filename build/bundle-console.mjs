// Fourth build step: the web console (web/console, Preact with htm) as one minified script,
// with its page, style sheet and icon, in dist/console/. The server reads these files only when
// started with --console. Preact and htm are devDependencies: they are copied into the bundle
// here, so the installed package needs neither. The script must stay under 150 KB (checked).
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'web/console');
const out = join(root, 'dist/console');
const MAX_SCRIPT_BYTES = 150 * 1024;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  input: join(source, 'main.js'),
  platform: 'browser',
  logLevel: 'warn',
  output: { file: join(out, 'app.js'), format: 'esm', minify: process.env.RWS_CONSOLE_DEBUG !== '1' },
  write: true,
});
for (const name of ['index.html', 'app.css', 'icon.svg']) copyFileSync(join(source, name), join(out, name));
const size = statSync(join(out, 'app.js')).size;
if (size > MAX_SCRIPT_BYTES) throw new Error(`dist/console/app.js is ${size} bytes, over the console's budget of ${MAX_SCRIPT_BYTES}`);
