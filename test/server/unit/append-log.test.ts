import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppendLog } from '../../../src/server/audit/append-log.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'rws-append-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each([false, true])('AppendLog (sync: %s)', (sync) => {
  it('has every line on file, in order, when its append resolves', async () => {
    const file = path.join(dir, 'log');
    const log = await AppendLog.open(file, { sync });
    const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, text: 'é\u2028' }));
    await Promise.all(
      lines.map(async (line, i) => {
        await log.append(line);
        // Resolved means written: this line and every line appended before it are in the file.
        const text = await readFile(file, 'utf8');
        expect(text.split('\n').slice(0, i + 1)).toEqual(lines.slice(0, i + 1));
      }),
    );
    await log.close();
    expect(await readFile(file, 'utf8')).toBe(lines.map((line) => `${line}\n`).join(''));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('rejects every line of a batch that cannot be written', async () => {
    const log = await AppendLog.open('/dev/full', { sync });
    const results = await Promise.allSettled([log.append('a'), log.append('b'), log.append('c')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    await log.close();
  });

  it('writes what was appended before close, and refuses lines after it', async () => {
    const file = path.join(dir, 'log');
    const log = await AppendLog.open(file, { sync });
    const pending = log.append('last');
    await log.close();
    await pending;
    expect(await readFile(file, 'utf8')).toBe('last\n');
    await expect(log.append('late')).rejects.toThrow();
  });
});
