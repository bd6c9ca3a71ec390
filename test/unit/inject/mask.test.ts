import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildNeedles, findRanges, maskedForms, MaskStream } from '../../../src/inject/mask.js';

async function maskChunks(values: string[], chunks: Array<string | Buffer>): Promise<string> {
  const stream = new MaskStream(buildNeedles(values));
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise((resolve) => stream.on('end', resolve));
  Readable.from(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk))).pipe(stream);
  await done;
  return Buffer.concat(out).toString();
}

describe('maskedForms', () => {
  it('covers the value, its base64 (padded and not), base64url, URL and JSON escapes', () => {
    const forms = maskedForms('p@ss/w+rd "x"\n');
    expect(forms).toContain('p@ss/w+rd "x"\n');
    expect(forms).toContain(Buffer.from('p@ss/w+rd "x"\n').toString('base64'));
    expect(forms).toContain(encodeURIComponent('p@ss/w+rd "x"\n'));
    expect(forms).toContain('p@ss/w+rd \\"x\\"\\n');
  });
});

describe('MaskStream', () => {
  it('masks a value split at every possible chunk boundary', async () => {
    const secret = 'correct-horse-battery';
    const text = `start ${secret} middle ${secret} end\n`;
    for (let cut = 1; cut < text.length; cut++) {
      const masked = await maskChunks([secret], [text.slice(0, cut), text.slice(cut)]);
      expect(masked, `cut at ${cut}`).toBe('start ****** middle ****** end\n');
    }
  });

  it('masks a value delivered one byte at a time, including a multi-byte UTF-8 value', async () => {
    const secret = 'пароль-секрет';
    const bytes = Buffer.from(`x ${secret} y`);
    const chunks = [...bytes].map((byte) => Buffer.from([byte]));
    expect(await maskChunks([secret], chunks)).toBe('x ****** y');
  });

  it('does not hold back output that cannot be the start of a secret', async () => {
    const stream = new MaskStream(buildNeedles(['s3cr3t-value']));
    const seen: string[] = [];
    stream.on('data', (chunk: Buffer) => seen.push(chunk.toString()));
    stream.write('progress 10%\n');
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen.join('')).toBe('progress 10%\n');
    stream.write('waiting for s3c');
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen.join('')).toBe('progress 10%\nwaiting for ');
    stream.end('r3t-value!');
    await new Promise((resolve) => stream.on('end', resolve));
    expect(seen.join('')).toBe('progress 10%\nwaiting for ******!');
  });

  it('flushes a held partial prefix at the end unchanged', async () => {
    expect(await maskChunks(['s3cr3t-value'], ['tail s3cr'])).toBe('tail s3cr');
  });

  it('masks overlapping and nested values as one run', async () => {
    expect(await maskChunks(['abcdef', 'cdefgh'], ['xxabcdefghyy'])).toBe('xx******yy');
    expect(await maskChunks(['password1', 'password12'], ['password12'])).toBe('******');
  });

  it('masks overlapping values split at every possible chunk boundary: no tail of either comes through', async () => {
    // The end of one value is the start of the other; a cut inside the overlap once let the
    // second value's tail out (the first was masked, the rest was no longer held back).
    for (const [values, text] of [
      [['abcdXY', 'XYZW12'], 'x abcdXYZW12 y'],
      [['abcdXY', 'XYZW12'], 'x abcdXYQ y'],
      [['k3y-one-ab', 'ab-two-k3y'], '[k3y-one-ab-two-k3y]'],
    ] as Array<[string[], string]>) {
      const whole = await maskChunks(values, [text]);
      for (let cut = 1; cut < text.length; cut++) {
        const masked = await maskChunks(values, [text.slice(0, cut), text.slice(cut)]);
        for (const value of values) expect(masked, `cut at ${cut}`).not.toContain(value.slice(2));
        expect(masked.replace(/(\*{6})+/g, '******'), `cut at ${cut}`).toBe(whole);
      }
    }
  });

  it('leaves values shorter than four characters alone', async () => {
    expect(await maskChunks(['abc'], ['abc abc'])).toBe('abc abc');
  });

  it('masks the base64 and JSON-escaped forms', async () => {
    const secret = 'line1\n"quoted"';
    const b64 = Buffer.from(secret).toString('base64');
    expect(await maskChunks([secret], [`{"v":${JSON.stringify(secret)}} ${b64}`])).toBe('{"v":"******"} ******');
  });
});

describe('findRanges', () => {
  it('merges overlapping matches', () => {
    expect(findRanges(Buffer.from('aaaa'), [Buffer.from('aa')])).toEqual([[0, 4]]);
  });
});
