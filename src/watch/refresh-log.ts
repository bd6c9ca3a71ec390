// Says each change of a refresh's state once: the first failure (and a different one after it),
// and the recovery. A wrapper that retries every few seconds for an hour writes two lines, not
// a thousand, and never goes silent (Doppler before #492 stopped watching without a word).
import type { Logger } from '../cli/output.js';

export class RefreshLog {
  private readonly states = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  ok(label: string): void {
    const before = this.states.get(label);
    this.states.set(label, 'ok');
    if (before !== undefined && before !== 'ok') this.log.notice(`${label}: refreshing again (the last failure was ${before})`);
  }

  /** `message` is the error's own line: names and codes only, never a value or credential. */
  failing(label: string, code: string, message: string, retryMs: number, next = 'refreshing is retried with backoff (at most 60s apart)'): void {
    const before = this.states.get(label);
    this.states.set(label, code);
    if (before === code) {
      this.log.debug(`${label}: still failing (${code}); next attempt in ${(retryMs / 1000).toFixed(1)}s`);
      return;
    }
    this.log.warn(code, `${label}: refresh failed: ${message}; the child keeps running with the secrets it has, and ${next}`);
  }
}
