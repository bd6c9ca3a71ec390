// A step after a committed change that fails is one warning line, escaped as every error line is:
// its message may quote the store's path, which may hold a control character.
import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { RwsError } from '../../../src/errors.js';
import { afterCommit } from '../../../src/server/commands/after-commit.js';
import type { CliIo } from '../../../src/server/cli.js';

it('prints a failed step as one warning line with the control characters of its message escaped', async () => {
  const stderr = new PassThrough();
  let written = '';
  stderr.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
  const io = { env: {}, stdin: new PassThrough(), stdout: new PassThrough(), stderr } as unknown as CliIo;
  const store = '/srv/vault\u001b[31m\nforged line';
  await afterCommit(io, 'recording the audit head', async () => {
    throw new RwsError('RWS_STORE_INVALID', `${store}/state-seen.json is not a regular file`);
  });
  expect(written).toBe(
    'secrets-server: warning RWS_STORE_INVALID: /srv/vault\\u001b[31m\\u000aforged line/state-seen.json is not a regular file; recording the audit head failed after the change was committed (the change stands)\n',
  );
});
