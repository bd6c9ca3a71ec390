#!/usr/bin/env node
// Idle connections held open against a server, as an attacker (or a fleet of forgetful clients)
// holds them: COUNT TCP connections from many loopback addresses that never send a byte; each one
// the server closes (its first-request timeout, or eviction at the cap) is opened again at once.
// Used by bench/server.mjs in a process of its own, so the load generator's event loop is not
// shared with thousands of sockets.
//
// Usage: node bench/idle-connections.mjs --hold http://127.0.0.1:PORT --count 5000
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Starts a holder process; resolves once `count` connections are open. */
export function startIdleHolder(url, count) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--hold', url, '--count', String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('holding\n')) {
        resolve({
          stop: () => new Promise((done) => {
            child.once('exit', done);
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`idle holder exited ${code}`)));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { hold: { type: 'string' }, count: { type: 'string', default: '5000' } } });
  const { hostname, port } = new URL(values.hold);
  const count = Number(values.count);
  let open = 0;
  let announced = false;
  let stopping = false;
  const hold = (i) => {
    if (stopping) return;
    const socket = connect({ host: hostname, port: Number(port), localAddress: `127.4.${Math.floor(i / 250) % 256}.${(i % 250) + 1}` });
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      open++;
      if (!announced && open >= count) {
        announced = true;
        process.stdout.write('holding\n');
      }
    });
    socket.once('close', (hadError) => {
      if (socket.remotePort !== undefined || !hadError) open--;
      setTimeout(() => hold(i), 10).unref();
    });
  };
  for (let i = 0; i < count; i++) hold(i);
  process.on('SIGTERM', () => {
    stopping = true;
    process.exit(0);
  });
  setInterval(() => undefined, 1 << 30);
}
