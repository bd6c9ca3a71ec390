// What SIGHUP does to a running server: every registered reload runs (re-read the TLS pair,
// reopen the audit file after logrotate, …). A reload that fails is logged by code and the
// server goes on with what it had; SIGHUP never stops the server.
import { RwsError } from '../errors.js';
import { nameAndCode } from './error-name.js';

export type Reload = () => Promise<void> | void;

/** What an operator might expect SIGHUP to re-read, and what does happen. */
const NOT_RELOADED = 'SIGHUP re-reads --tls-cert and --tls-key and reopens --audit-log; the JWT secret, the API key pepper and the age identities are read at start: restart the server to change them';

export class ReloadHooks {
  readonly #hooks: Array<{ name: string; run: Reload; done: string }> = [];

  /** `name` is what is reloaded, as the log lines say it: `SIGHUP, <name> <done>`. */
  add(name: string, run: Reload, done = 'reloaded'): void {
    this.#hooks.push({ name, run, done });
  }

  /** Runs every reload in order; each failure is reported and the rest still run. */
  async runAll(log: (line: string) => void): Promise<void> {
    // Said, so that `systemctl reload` is not taken for a reload of the store's keys.
    if (this.#hooks.length === 0) log(`secrets-server: SIGHUP, nothing to reload (${NOT_RELOADED})`);
    for (const { name, run, done } of this.#hooks) {
      try {
        await run();
        log(`secrets-server: SIGHUP, ${name} ${done}`);
      } catch (error) {
        log(`secrets-server: SIGHUP, kept the old ${name}: ${describeFailure(error)}`);
      }
    }
  }
}

/** Code, message and hint of our errors; only the name and code of others (their message may hold data). */
export function describeFailure(error: unknown): string {
  if (error instanceof RwsError) return `${error.code}: ${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}`;
  return nameAndCode(error, 'non-error thrown');
}
