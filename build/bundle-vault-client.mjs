// Second build step, after tsc: bundles the vault client with the part of undici it uses into one
// lazily loaded module, dist/vault-client/index.js, over what tsc emitted there. Loading undici's
// Pool module by module costs ≈50 ms per vault run here, bundled ≈25 ms (bench/e2e), and every
// cron run pays it. Everything outside src/vault-client stays a separate module, so our error
// classes keep one identity across the program. Tests that import src/ load the same code
// unbundled; the end-to-end tests run this bundle.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const clientDir = join(root, 'src/vault-client/');
const outDir = join(root, 'dist/vault-client');

await build({
  input: join(clientDir, 'index.ts'),
  platform: 'node',
  logLevel: 'warn',
  // Node's built-ins, our modules outside the client and packages other than undici are imported.
  external: (id, importer) => {
    if (id.startsWith('node:')) return true;
    if (id.startsWith('../')) return importer?.startsWith(clientDir) === true;
    return !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('undici/');
  },
  resolve: {
    extensionAlias: { '.js': ['.ts', '.js'] },
    // Two modules the client cannot reach (see each stand-in), left out: ≈250 KB less to compile.
    alias: {
      [join(root, 'node_modules/undici/lib/dispatcher/client-h2.js')]: join(root, 'build/h2-absent.cjs'),
      [join(root, 'node_modules/undici/lib/web/fetch/body.js')]: join(root, 'build/fetch-body-absent.cjs'),
    },
  },
  output: { file: join(outDir, 'index.js'), format: 'esm' },
  write: true,
});

// tsc's one-file-per-module output of the client is now inside the bundle; leave one copy only.
for (const name of readdirSync(outDir)) if (name !== 'index.js') rmSync(join(outDir, name));
