// Third build step: the wrapper as CommonJS, for the hot path every cron run pays.
//
// Node's ES module loader costs a local run ≈9 ms more than its CommonJS loader for the same
// code (resolution, linking, one module record per file; bench/startup). So:
//   dist/errors.cjs, glob.cjs, names.cjs  the modules the vault client bundle shares with the CLI,
//                                         as CommonJS; tsc's dist/errors.js (etc.) become ES
//                                         re-exports of them, so that every importer, CommonJS or
//                                         ES, gets the same classes: a VaultError thrown by the
//                                         client must still be an RwsError to the CLI
//   dist/cli/loader.cjs                   build/cli-loader.cjs: loads the CLI with its V8 code cache
//   dist/cli/main.cjs + *-HASH.cjs        the CLI (bin/run-with-secrets.js loads main.cjs), with
//                                         dotenv in it and one chunk per lazily loaded part (SOPS,
//                                         the yargs front end, subcommands...)
// The vault client bundle (dist/vault-client/index.cjs, build/bundle-vault-client.mjs) is
// CommonJS too, so a vault run never starts the ES module loader for our code; what stays an ES
// module is imported: the packages yargs, chalk and age-encryption. The server keeps tsc's ES
// modules.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';
import { parseAst } from 'rolldown/parseAst';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const staging = join(dist, '.cli-bundle');
const SHARED = ['errors', 'glob', 'names'];
const sharedFiles = new Map(SHARED.map((name) => [join(dist, `${name}.js`), name]));
/** How the CLI's modules name the vault client (tsc's path; the build made it index.cjs). */
const VAULT_CLIENT = /(^|\/)vault-client\/index\.js$/;

// The vault client bundle must require the shared modules, never carry copies of them.
const client = readFileSync(join(dist, 'vault-client/index.cjs'), 'utf8');
for (const match of client.matchAll(/require\("\.\.\/([\w-]+)\.c?js"\)/g)) {
  if (!sharedFiles.has(join(dist, `${match[1]}.js`))) throw new Error(`dist/vault-client/index.cjs requires ../${match[1]}, which is not shared as CommonJS`);
}

rmSync(staging, { recursive: true, force: true });

// 1. The shared modules, as CommonJS: one file each (names.cjs requires ./errors.cjs and ./glob.cjs).
// tsc's ES output is the input, so a second build run after tsc has replaced it again.
const sharedSource = (name) => readFileSync(join(dist, `${name}.js`), 'utf8');
if (SHARED.some((name) => sharedSource(name).includes('.cjs'))) throw new Error('dist/*.js are already re-exports: run tsc before this step (npm run build)');
await build({
  input: Object.fromEntries(SHARED.map((name) => [name, join(dist, `${name}.js`)])),
  platform: 'node',
  logLevel: 'warn',
  external: (id) => id.startsWith('node:'),
  output: { dir: join(staging, 'shared'), format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: '[name]-[hash].cjs' },
  write: true,
});
const sharedOut = readdirSync(join(staging, 'shared')).sort();
if (sharedOut.join(',') !== SHARED.map((name) => `${name}.cjs`).sort().join(',')) throw new Error(`shared modules built as ${sharedOut.join(', ')}`);

// 2. The CLI, with the shared modules and the vault client left outside it. A first pass finds
// the modules a plain run loads (the entry's static imports, which code splitting spreads over
// chunks shared with the lazy parts); the build then puts them all in one chunk, `hot`, so a run
// reads and compiles two files of ours instead of a handful.
const cliOptions = {
  input: join(dist, 'cli/main.js'),
  platform: 'node',
  logLevel: 'warn',
  makeAbsoluteExternalsRelative: true,
  // dotenv is bundled in (a package costs its resolution); other packages are required or
  // imported at run time.
  external: (id, _importer, isResolved) => id.startsWith('node:') || VAULT_CLIENT.test(id) || (isResolved ? sharedFiles.has(id) : !id.startsWith('.') && !id.startsWith('/') && id !== 'dotenv'),
};
const cliOutput = { dir: join(staging, 'cli'), format: 'cjs', entryFileNames: 'main.cjs', chunkFileNames: '[name]-[hash].cjs' };
const firstPass = await build({ ...cliOptions, output: cliOutput, write: false });
const chunks = new Map(firstPass.output.filter((item) => item.type === 'chunk').map((chunk) => [chunk.fileName, chunk]));
const hotModules = new Set();
const pending = [...chunks.get('main.cjs').imports];
for (const seen = new Set(); pending.length > 0; ) {
  const name = pending.pop();
  const chunk = chunks.get(name);
  if (chunk === undefined || seen.has(name)) continue;
  seen.add(name);
  for (const id of chunk.moduleIds) hotModules.add(id);
  pending.push(...chunk.imports);
}
await build({
  ...cliOptions,
  output: { ...cliOutput, codeSplitting: { groups: [{ name: 'hot', test: (id) => hotModules.has(id) }] } },
  write: true,
});

// The CLI requires the shared modules as .cjs, and imports the vault client (an ES module).
const cliFiles = readdirSync(join(staging, 'cli'));
for (const name of cliFiles) {
  const file = join(staging, 'cli', name);
  let text = readFileSync(file, 'utf8');
  for (const shared of SHARED) text = text.replaceAll(`require("../${shared}.js")`, `require("../${shared}.cjs")`);
  if (/require\("\.\.\/[\w/-]+\.js"\)/.test(text)) throw new Error(`${name} requires an ES module of dist/: ${/require\("\.\.\/[\w/-]+\.js"\)/.exec(text)[0]}`);
  if (/require\("(yargs|chalk|age-encryption)"\)/.test(text)) throw new Error(`${name} requires an ES-only package; import() it`);
  writeFileSync(file, routeDynamicImports(text, name));
}
const mainText = readFileSync(join(staging, 'cli/main.cjs'), 'utf8');
if (!mainText.includes('require("../errors.cjs")')) throw new Error('dist/cli/main.cjs must require ../errors.cjs, not carry a copy of it');

// 3. Staged first, moved in last: a failed build leaves tsc's working ES modules.
const requireShared = createRequire(join(staging, 'shared', 'x.cjs'));
const reexports = new Map(SHARED.map((name) => {
  const names = Object.keys(requireShared(`./${name}.cjs`)).filter((key) => key !== '__esModule').sort();
  return [name, `// Built by build/bundle-cli.mjs: one copy of these classes per process, CommonJS or ES.\nexport { ${names.join(', ')} } from './${name}.cjs';\n`];
}));
for (const name of SHARED) {
  renameSync(join(staging, 'shared', `${name}.cjs`), join(dist, `${name}.cjs`));
  writeFileSync(join(dist, `${name}.js`), reexports.get(name));
}
mkdirSync(join(dist, 'cli'), { recursive: true });
for (const name of readdirSync(join(dist, 'cli'))) if (/-[\w-]{8}\.c?js$/.test(name) || name === 'main.cjs') rmSync(join(dist, 'cli', name));
for (const name of cliFiles) renameSync(join(staging, 'cli', name), join(dist, 'cli', name));
rmSync(staging, { recursive: true, force: true });
// The loader bin/run-with-secrets.js loads the CLI through (build/cache-cli.cjs makes its caches).
copyFileSync(join(root, 'build/cli-loader.cjs'), join(dist, 'cli/loader.cjs'));

/**
 * Every `import(X)` of a CLI file becomes `require("./loader.cjs").dynamicImport(X, __filename)`:
 * the loader compiles these files as vm Scripts (for their code cache), and a Script's import()
 * needs an experimental flag on Node 20. Found by parsing, not by text, so a string that holds
 * "import(" is left alone.
 */
function routeDynamicImports(text, name) {
  const found = [];
  const visit = (node) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (node === null || typeof node !== 'object') return;
    if (node.type === 'ImportExpression') {
      if (node.options) throw new Error(`${name}: import() with options is not supported by the loader`);
      found.push(node);
    }
    for (const value of Object.values(node)) if (value !== null && typeof value === 'object') visit(value);
  };
  visit(parseAst(text, { sourceType: 'script' }, name));
  let out = text;
  for (const node of found.sort((a, b) => b.start - a.start)) {
    const specifier = out.slice(node.source.start, node.source.end);
    // The vault client is CommonJS now (build/bundle-vault-client.mjs): required, not imported.
    const replacement = specifier === '"../vault-client/index.js"' ? 'Promise.resolve().then(() => require("../vault-client/index.cjs"))' : `require("./loader.cjs").dynamicImport(${specifier}, __filename)`;
    out = `${out.slice(0, node.start)}${replacement}${out.slice(node.end)}`;
  }
  return out;
}
