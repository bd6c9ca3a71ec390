// A `secret set` held inside its edit by strace, for tests of the edit lock `sops:ENV`: strace
// delays the holder's fsync (of its new version, written while it holds the lock), and the
// holder's pid is read from that new version's name (`.ENV.enc.yaml.PID.RANDOM.tmp`).
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { until } from './server.js';

const BIN = fileURLToPath(new URL('../../../bin/secrets-server.js', import.meta.url));

export const straceWorks = (): Promise<boolean> => execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false);

/** The new versions an edit has written and not yet renamed into place. */
export const pendingVersions = (storeDir: string): string[] => readdirSync(storeDir).filter((file) => file.endsWith('.tmp'));

/**
 * Starts `secret set ENV KEY` with every fsync (or, with `once`, the first) delayed by `delayMs`,
 * and waits until it holds the lock and has written its new version: returns it and its pid.
 */
export async function heldEdit(
  storeDir: string,
  environment: string,
  key: string,
  options: { input: string; delayMs: number; once?: boolean; env?: Record<string, string> },
): Promise<{ holder: ResultPromise<{ input: string; reject: false }>; pid: number }> {
  const inject = `inject=fsync:delay_enter=${options.delayMs * 1000}${options.once ? ':when=1' : ''}`;
  const holder = execa('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fsync', '-e', inject, BIN, 'secret', 'set', environment, key, '--store', storeDir], {
    input: options.input,
    env: options.env,
    reject: false,
  });
  // Its own new version only: a server on the store writes temp files of its own (state-seen.json's).
  const own = () => pendingVersions(storeDir).find((file) => file.startsWith(`.${environment}.enc.yaml.`));
  await until(async () => own() !== undefined || holder.exitCode !== null, 20_000);
  const pid = Number(new RegExp(`\\.${environment}\\.enc\\.yaml\\.(\\d+)\\.`).exec(own() ?? '')?.[1]);
  return { holder, pid };
}
