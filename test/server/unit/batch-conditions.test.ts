// The parsers and the digest behind the batch's ETag and long-poll, with hostile input: the
// `wait` query, the `If-None-Match` header, and the keyed tag.
import type { IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { answerTag, deriveAnswerTagKey } from '../../../src/server/http/batch/answer-tag.js';
import { HttpError } from '../../../src/server/http/http-error.js';
import { ifNoneMatch, matchesTag } from '../../../src/server/http/batch/if-none-match.js';
import { batchWait } from '../../../src/server/http/batch/wait-param.js';

const withHeader = (value: string | undefined) => ({ headers: value === undefined ? {} : { 'if-none-match': value } }) as unknown as IncomingMessage;

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(HttpError);
    return `${(error as HttpError).status} ${(error as HttpError).code}`;
  }
  return 'accepted';
}

describe('batchWait', () => {
  it('takes 0 to 60 in plain decimal, and no query as 0', () => {
    expect(batchWait('')).toBe(0);
    expect(batchWait('wait=0')).toBe(0);
    expect(batchWait('wait=7')).toBe(7);
    expect(batchWait('wait=60')).toBe(60);
    expect(batchWait('wait=%36%30')).toBe(60);
  });

  it('refuses everything else with 400 RWS_BAD_REQUEST', () => {
    for (const query of ['wait=61', 'wait=-1', 'wait=1e9', 'wait=1e1', 'wait=abc', 'wait=', 'wait', 'wait=05', 'wait=00', 'wait=1.0', 'wait=+5', 'wait= 5', 'wait=5 ', 'wait=0x1', 'wait=Infinity', 'wait=NaN', 'wait=٣', `wait=${'1'.repeat(400)}`, 'wait=5&wait=5', 'wait=5&wait=6', 'WAIT=5', 'wait=5&pattern=x', 'x=1', '=5', '&']) {
      expect([query.slice(0, 20), refusal(() => batchWait(query))]).toEqual([query.slice(0, 20), '400 RWS_BAD_REQUEST']);
    }
  });
});

describe('ifNoneMatch', () => {
  it('is undefined without the header, and reads lists of strong and weak tags', () => {
    expect(ifNoneMatch(withHeader(undefined))).toBeUndefined();
    expect([...(ifNoneMatch(withHeader('"a"')) ?? [])]).toEqual(['"a"']);
    expect([...(ifNoneMatch(withHeader('W/"a", "b",,  "c,d" , W/""')) ?? [])]).toEqual(['"a"', '"b"', '"c,d"', '""']);
    expect(matchesTag(ifNoneMatch(withHeader('W/"v1-x"')), '"v1-x"')).toBe(true);
    expect(matchesTag(ifNoneMatch(withHeader('"v1-y", "v1-x"')), '"v1-x"')).toBe(true);
    expect(matchesTag(ifNoneMatch(withHeader('"v1-y"')), '"v1-x"')).toBe(false);
    expect(matchesTag(undefined, '"v1-x"')).toBe(false);
  });

  it('refuses *, malformed lists, and oversized headers with 400 RWS_BAD_REQUEST', () => {
    const hostile = ['*', ' * ', '', '   ', ',', 'a', 'v1-x', '"a', 'a"', 'W/', 'W/a', 'w/"a"', 'W /"a"', '"a" "b"', '"a";"b"', '"a"x', '"a\u0000"', '"a\tb"', '"a"b"', `"${'x'.repeat(4100)}"`, Array.from({ length: 65 }, (_, i) => `"${i}"`).join(','), '"a", *'];
    for (const value of hostile) {
      expect([JSON.stringify(value.slice(0, 20)), refusal(() => ifNoneMatch(withHeader(value)))]).toEqual([JSON.stringify(value.slice(0, 20)), '400 RWS_BAD_REQUEST']);
    }
  });

  it('takes 64 tags and obs-text', () => {
    expect(ifNoneMatch(withHeader(Array.from({ length: 64 }, (_, i) => `"${i}"`).join(',')))?.size).toBe(64);
    expect(ifNoneMatch(withHeader('"caf\u00e9"'))?.size).toBe(1);
  });
});

describe('answerTag', () => {
  const key = deriveAnswerTagKey(new TextEncoder().encode('a'.repeat(64)));

  it('depends on the environment, every name and every value, not on their order', () => {
    const base = answerTag(key, 'prod', { A: '1', B: '2' });
    expect(base).toMatch(/^"v1-[A-Za-z0-9_-]{43}"$/);
    expect(answerTag(key, 'prod', { B: '2', A: '1' })).toBe(base);
    expect(answerTag(key, 'staging', { A: '1', B: '2' })).not.toBe(base);
    expect(answerTag(key, 'prod', { A: '1', B: '3' })).not.toBe(base);
    expect(answerTag(key, 'prod', { A: '1', C: '2' })).not.toBe(base);
    expect(answerTag(key, 'prod', { A: '1' })).not.toBe(base);
    expect(answerTag(key, 'prod', {})).not.toBe(answerTag(key, 'prod', { A: '' }));
  });

  it('never confuses answers whose concatenations are equal', () => {
    expect(answerTag(key, 'prod', { A: '12' })).not.toBe(answerTag(key, 'prod', { A1: '2' }));
    expect(answerTag(key, 'prod', { A: '1', B: '2' })).not.toBe(answerTag(key, 'prod', { A: '1B2' }));
  });

  it('is keyed: another signing secret gives another tag, and no plain hash of the values matches it', () => {
    const other = deriveAnswerTagKey(new TextEncoder().encode('b'.repeat(64)));
    const values = { PIN: '1234' };
    const tag = answerTag(key, 'prod', values);
    expect(answerTag(other, 'prod', values)).not.toBe(tag);
    const plain = ['1234', 'PIN1234', 'PIN=1234', JSON.stringify(values)].flatMap((text) => [createHash('sha256').update(text).digest('base64url'), createHash('sha256').update(text).digest('hex')]);
    for (const digest of plain) expect(tag).not.toContain(digest);
    // The key is derived, not the signing secret itself.
    expect(Buffer.from(key).toString()).not.toContain('a'.repeat(32));
  });
});
