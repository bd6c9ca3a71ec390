import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, type LogFormat } from '../../../src/cli/output.js';
import { SourceError } from '../../../src/errors.js';

function collect(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, lines: () => text.split('\n').slice(0, -1) };
}

const logger = (stream: Writable, format: LogFormat) => createLogger({ stream, level: 'verbose', format, color: false, program: 'run-with-secrets', now: () => new Date(0) });

// A path or a command name is quoted as given: `--env-file "$f"` with a newline in $f.
const HOSTILE = 'x\ny\u001b[2J\u202ez\u0085';

describe('every diagnostic is one line, its control characters escaped', () => {
  it('text: errors, hints, warnings and the -v lines', async () => {
    const { stream, lines } = collect();
    const log = await logger(stream, 'text');
    log.error(new SourceError('RWS_SOURCE_UNREADABLE', `cannot read ${HOSTILE}`, `check ${HOSTILE}`));
    log.warn('RWS_X', HOSTILE);
    log.notice(HOSTILE);
    log.info(HOSTILE);
    log.debug(HOSTILE);
    const escaped = 'x\\u000ay\\u001b[2J\\u202ez\\u0085';
    expect(lines()).toEqual([
      `run-with-secrets: error RWS_SOURCE_UNREADABLE: cannot read ${escaped} (hint: check ${escaped})`,
      `run-with-secrets: warning RWS_X: ${escaped}`,
      `run-with-secrets: ${escaped}`,
      `run-with-secrets: ${escaped}`,
      `run-with-secrets: ${escaped}`,
    ]);
  });

  it('JSON: the same value, with C1 and bidi characters escaped too', async () => {
    const { stream, lines } = collect();
    const log = await logger(stream, 'json');
    log.error(new SourceError('RWS_SOURCE_UNREADABLE', `cannot read ${HOSTILE}`));
    expect(lines()).toHaveLength(1);
    expect(lines()[0]).not.toMatch(/[\u0000-\u001f\u0085\u202e]/);
    expect((JSON.parse(lines()[0]!) as { message: string }).message).toBe(`cannot read ${HOSTILE}`);
  });
});
