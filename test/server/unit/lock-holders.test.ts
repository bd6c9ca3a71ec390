// Naming who holds a file's lock (/proc/locks): a real holder, in a process of its own, and the
// sentences for holders this process cannot see or describe.
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeHolders, lockHolders } from '../../../src/server/state/sqlite/lock-holders.js';

it('finds the process that holds a SQLite file\'s write lock, running, and not this process', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'rws-lock-holders-'));
  const file = path.join(dir, 'locks.db');
  // A holder of its own: better-sqlite3's EXCLUSIVE transaction, held until stdin closes.
  const holder = execa(process.execPath, ['-e', `const db = new (require('better-sqlite3'))(${JSON.stringify(file)}); db.exec('BEGIN EXCLUSIVE'); console.log('held'); process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`], { cwd: process.cwd() });
  try {
    await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
    const holders = lockHolders(file);
    expect(holders).toEqual([{ pid: holder.pid, name: 'node', stopped: false }]);
    expect(describeHolders(holders)).toBe(`process ${holder.pid} (node)`);
  } finally {
    holder.stdin?.end();
    await holder.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  // Once it has ended, nobody holds it; a file that does not exist names nobody either.
  expect(lockHolders(file)).toEqual([]);
});

it('says who holds it in words: stopped, unnamed, or in another PID namespace', () => {
  expect(describeHolders([])).toBeUndefined();
  expect(describeHolders([{ pid: 42, name: 'node', stopped: true }])).toBe('process 42 (node, stopped)');
  expect(describeHolders([{ pid: 7 }])).toBe('process 7');
  expect(describeHolders([{ pid: 0 }, { pid: 9, name: 'sqlite3', stopped: false }])).toBe('a process in another PID namespace (another container on this store) and process 9 (sqlite3)');
  expect(describeHolders([{ pid: 0 }], 'sharing this file')).toBe('a process in another PID namespace (another container sharing this file)');
});
