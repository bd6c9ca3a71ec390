// Third build step: makes the V8 code cache the vault client loads undici through
// (build/undici-loader.mjs). Runs in a process of its own so that no other code shares the V8
// state the cache records. The bundled undici is compiled and then warmed with what a vault run
// does, against a throwaway loopback server: POSTs with a JSON body, a GET, JSON answers read to
// the end and a 204, so that the cache also holds the functions those paths compile.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheHeader, runModule, undiciScript } from './undici-script.mjs';

const filename = join(fileURLToPath(new URL('..', import.meta.url)), 'dist/vault-client/undici.cjs');
rmSync(`${filename}.cache`, { force: true });
const source = readFileSync(filename);
const script = undiciScript(source.toString('utf8'), filename);
const { Pool } = runModule(script, filename);

const server = createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    if (request.url === '/empty') response.writeHead(204).end();
    else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ warm: 'x'.repeat(4096) }));
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pool = new Pool(`http://127.0.0.1:${server.address().port}`, { connect: { timeout: 5000, rejectUnauthorized: true }, headersTimeout: 5000, bodyTimeout: 5000, connections: 16, maxHeaderSize: 16 * 1024 });
const json = { accept: 'application/json', 'content-type': 'application/json' };
for (const [method, path, body] of [['POST', '/json', '{"warm":true}'], ['GET', '/json', undefined], ['POST', '/empty', '{}']]) {
  const response = await pool.request({ method, path, headers: body === undefined ? { accept: 'application/json' } : json, body });
  if (response.statusCode === 204) await response.body.dump();
  else for await (const chunk of response.body) void chunk;
}
await pool.close();
await new Promise((resolve) => server.close(resolve));
// Written whole and then renamed: a reader never sees half a cache.
const data = script.createCachedData();
writeFileSync(`${filename}.cache.tmp`, Buffer.concat([Buffer.from(cacheHeader(source.length, data.length)), source, data]), { mode: 0o644 });
renameSync(`${filename}.cache.tmp`, `${filename}.cache`);
