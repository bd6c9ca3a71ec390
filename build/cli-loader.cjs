// Copied to dist/cli/loader.cjs by build/bundle-cli.mjs; bin/run-with-secrets.js loads the CLI
// through it. It loads the CLI's CommonJS files (dist/cli/*.cjs, dist/*.cjs) as Node would, but
// compiles each one with the V8 code cache that build/cache-cli.cjs made beside it (FILE.cache),
// so a local run neither parses the hot path nor compiles its functions again: ≈5 ms of every
// cron run (bench/startup).
//
// A cache is used only whole, only by the node binary that made it, and only when the source
// beside it is byte for byte the copy inside it: V8 checks its own version and flags and the
// source's length, nothing more, and it aborts the process on data it cannot read. Anything else
// (no cache: a registry install, which never ships them; another node; an edited file; a cache
// V8 refuses) compiles from source as usual. `-v` says which (`cli: code cache used` ...).
'use strict';
const Module = require('node:module');
const { readFileSync, statSync } = require('node:fs');
const { dirname, join, sep } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

/** dist/: only our own files there are loaded here; everything else goes to Node's require. */
const DIST = join(__dirname, '..') + sep;
const VAULT_CLIENT_DIR = join(DIST, 'vault-client') + sep;
const WRAPPER = ['(function (exports, require, module, __filename, __dirname) {', '\n})'];
/** FILE → what happened to its cache: used, rejected, stale or absent. */
const states = new Map();
/** What was compiled, for build/cache-cli.cjs. */
const compiled = [];

let node;
/** The cache file's first line: what it is bound to (see the top of this file). */
function cacheHeader(sourceSize, dataSize) {
  node ??= statSync(process.execPath);
  return `${JSON.stringify({ node: process.execPath, nodeVersion: process.version, nodeSize: node.size, nodeMtimeMs: node.mtimeMs, sourceSize, dataSize })}\n`;
}

/** V8's data from FILE.cache when it is whole and made from `source` by this node; else why not. */
function readCache(filename, source) {
  let cache;
  try {
    cache = readFileSync(`${filename}.cache`);
  } catch {
    return { state: 'absent' };
  }
  const start = cache.indexOf(0x0a) + 1;
  const dataSize = cache.length - start - source.length;
  if (start === 0 || dataSize <= 0 || cache.toString('utf8', 0, start) !== cacheHeader(source.length, dataSize)) return { state: 'stale' };
  if (!cache.subarray(start, start + source.length).equals(source)) return { state: 'stale' };
  return { state: 'used', data: cache.subarray(start + source.length) };
}

/** Loads one of our CommonJS files (once per process: Node's module cache holds it). */
function load(filename) {
  const known = Module._cache[filename];
  if (known !== undefined) return known.exports;
  const source = readFileSync(filename);
  const cache = readCache(filename, source);
  const script = new Script(`${WRAPPER[0]}${source.toString('utf8')}${WRAPPER[1]}`, {
    filename,
    cachedData: cache.data,
  });
  states.set(filename, cache.data !== undefined && script.cachedDataRejected ? 'rejected' : cache.state);
  compiled.push({ filename, source, script });
  const module = new Module(filename, null);
  module.filename = filename;
  module.paths = Module._nodeModulePaths(dirname(filename));
  Module._cache[filename] = module;
  try {
    script.runInThisContext().call(module.exports, module.exports, requireFrom(filename), module, filename, dirname(filename));
  } catch (error) {
    delete Module._cache[filename];
    throw error;
  }
  module.loaded = true;
  return module.exports;
}

/** The `require` of a file loaded here: our files through `load`, the rest through Node's. */
function requireFrom(parent) {
  const native = Module.createRequire(parent);
  const ours = (id) => {
    if (id.startsWith('.') && id.endsWith('.cjs')) {
      const filename = join(dirname(parent), id);
      // The vault client (dist/vault-client/) goes to Node's require: it import()s, and it loads
      // its bundled HTTP client through a code cache of its own.
      if (filename.startsWith(DIST) && !filename.startsWith(VAULT_CLIENT_DIR)) return load(filename);
    }
    return native(id);
  };
  ours.resolve = native.resolve;
  ours.cache = native.cache;
  return ours;
}

/**
 * import() for the CLI's files: a compiled Script may not import() without an experimental
 * flag on Node 20, so the build rewrites each `import(X)` of dist/cli/*.cjs into
 * `require("./loader.cjs").dynamicImport(X, __filename)`. A relative specifier is taken from the
 * file that asks; a package resolves as from it (this file sits beside them in dist/cli/).
 */
function dynamicImport(specifier, from) {
  return import(specifier.startsWith('.') ? new URL(specifier, pathToFileURL(from)).href : specifier);
}

/** One line for `-v`: every file used its cache, or which did not and why. */
function summary() {
  const counts = new Map();
  for (const state of states.values()) counts.set(state, (counts.get(state) ?? 0) + 1);
  if (counts.size === 1 && counts.has('used')) return `used (${states.size} files)`;
  return [...counts].map(([state, count]) => `${state} ${count}`).join(', ');
}

module.exports = { load, dynamicImport, summary, compiled, cacheHeader };
