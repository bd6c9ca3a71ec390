// Lines of /proc/PID/stat from real processes that chose hostile names (a link's name, which the
// kernel takes at exec; process.title, which is prctl PR_SET_NAME), and lines that are not stat lines.
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseProcStat } from '../../../src/process/proc-stat.js';

const statOf = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'latin1');
const commOf = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'latin1');

async function until(done: () => boolean): Promise<void> {
  for (let tries = 0; !done() && tries < 500; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(done()).toBe(true);
}

const started: ResultPromise[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const child of started.splice(0)) {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('parseProcStat', () => {
  it('reads past a name that ran from a link holding ") ", "(" and fake fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rws-proc-stat-'));
    dirs.push(dir);
    const name = 'x) Z 1 2 3 (y';
    symlinkSync('/bin/sleep', join(dir, name));
    // detached: a session and group of its own, so pgrp is its pid and it has no terminal.
    const child = execa(join(dir, name), ['30'], { detached: true, reject: false });
    started.push(child);
    const pid = child.pid!;
    await until(() => commOf(pid) === `${name}\n`);
    const fields = parseProcStat(statOf(pid));
    expect(fields).toEqual({ state: expect.stringMatching(/^[RS]$/), ppid: process.pid, pgrp: pid, tpgid: -1, starttime: expect.stringMatching(/^\d+$/) });
    expect(Number(fields!.starttime)).toBeGreaterThanOrEqual(Number(parseProcStat(statOf(process.pid))!.starttime));
  });

  it('reads past a name set by process.title holding a newline, and sees the process stopped', async () => {
    const title = 'a)\n) R 1 2 (b';
    const child = execa(process.execPath, ['-e', `process.title = ${JSON.stringify(title)}; console.log('ready'); setInterval(() => {}, 1000);`], { reject: false });
    started.push(child);
    const pid = child.pid!;
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    expect(commOf(pid)).toBe(`${title}\n`);
    expect(parseProcStat(statOf(pid))).toMatchObject({ state: expect.stringMatching(/^[RS]$/), ppid: process.pid, pgrp: parseProcStat(statOf(process.pid))!.pgrp });
    process.kill(pid, 'SIGSTOP');
    await until(() => parseProcStat(statOf(pid))?.state === 'T');
  });

  it('reads the fields of a line as the kernel writes it, negative numbers included', () => {
    const line = '4242 (node) S 1 4242 4242 34816 -1 4194560 2185 0 0 0 2 1 0 0 -2 0 7 0 123456789 1085566976 11707 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n';
    expect(parseProcStat(line)).toEqual({ state: 'S', ppid: 1, pgrp: 4242, tpgid: -1, starttime: '123456789' });
  });

  it('is undefined for a line that is not a whole stat line, whatever its name says', () => {
    const head = '4242 (node) S 1 4242 4242 34816 4242';
    const rest = ' 4194560 2185 0 0 0 2 1 0 0 20 0 7 0 123456789 1085566976';
    expect(parseProcStat(`${head}${rest}`)).toBeDefined();
    for (const line of [
      '',
      'garbage',
      '\n',
      head, // cut before the start time
      `${head} 4194560 2185 0 0 0 2 1 0 0 20 0 7 0`, // cut just before it
      `4242 node S 1 4242 4242 34816 4242${rest}`, // no parentheses
      `(node) S 1 4242 4242 34816 4242${rest}`, // no pid
      `4242 (node)S 1 4242 4242 34816 4242${rest}`, // no space after the name
      `4242 (node) ? 1 4242 4242 34816 4242${rest}`, // a state that is not a letter
      `4242 (node) S one 4242 4242 34816 4242${rest}`, // a field that is not a number
      `4242 (node) S 1 4242 4242 34816 4242 4194560 2185 0 0 0 2 1 0 0 20 0 7 0 12x`, // nor the start
      // The name holds a whole line's fields, but the line ends soon after it: a cut line.
      `4242 (n) S 1 7 7 0 7 0 0 0 0 0 0 0 0 0 20 0 1 0 99) S 1 4242`,
    ]) {
      expect(parseProcStat(line), JSON.stringify(line)).toBeUndefined();
    }
  });
});
