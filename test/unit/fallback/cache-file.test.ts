// Hostile fallback cache files, on real files: each is refused with its code, never opened
// halfway, and no refusal quotes a value or the API key.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FallbackError } from '../../../src/errors.js';
import { CacheFile, cacheFileName, keyFingerprint, normalSelection } from '../../../src/fallback/cache-file.js';
import { type CacheMetadata, sealCache } from '../../../src/fallback/cache-format.js';
import { judgeCache } from '../../../src/fallback/cache-policy.js';

const API_KEY = `rws_sk_${'3c'.repeat(16)}`;
const OTHER_KEY = `rws_sk_${'4d'.repeat(16)}`;
const SECRETS = new Map([['DB_PASSWORD', 'cache-unit-secret-1'], ['API_TOKEN', 'cache-unit-secret-2']]);
const NOW = new Date('2030-06-01T12:00:00.000Z');
const IDENTITY = { url: 'https://vault.example:8200', environment: 'prod', selection: normalSelection(['DB_*', 'API_*'], []), keyId: keyFingerprint(API_KEY) };
const uid = process.getuid?.() ?? -1;

let dir: string;
let path: string;

const metadata = (overrides: Partial<CacheMetadata> = {}): CacheMetadata => ({
  version: 1,
  url: IDENTITY.url,
  environment: IDENTITY.environment,
  selection: IDENTITY.selection,
  key_id: IDENTITY.keyId,
  fetched_at: new Date(NOW.getTime() - 3_600_000).toISOString(),
  not_after: new Date(NOW.getTime() + 20 * 3_600_000).toISOString(),
  ...overrides,
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-cache-unit-'));
  chmodSync(dir, 0o700);
  path = join(dir, cacheFileName(IDENTITY));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(file: CacheFile, key = API_KEY): Promise<FallbackError> {
  const error = await file.read(key, IDENTITY).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FallbackError);
  const text = `${(error as Error).message} ${(error as FallbackError).hint}`;
  for (const secret of [API_KEY, ...SECRETS.values()]) expect(text).not.toContain(secret);
  return error as FallbackError;
}

describe('a cache file', () => {
  it('round-trips: 0600, no value or key in its bytes, the same job finds it under the same name whatever the flag order', async () => {
    const file = new CacheFile(path, uid);
    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    const bytes = readFileSync(path);
    for (const secret of [API_KEY, ...SECRETS.values()]) expect(bytes.includes(Buffer.from(secret))).toBe(false);
    const opened = await file.read(API_KEY, IDENTITY);
    expect(opened?.secrets).toEqual(SECRETS);
    expect(opened?.metadata).toEqual(metadata());
    expect(cacheFileName({ ...IDENTITY, selection: normalSelection(['API_*', 'DB_*', 'DB_*'], []) })).toBe(cacheFileName(IDENTITY));
    expect(cacheFileName({ ...IDENTITY, keyId: keyFingerprint(OTHER_KEY) })).not.toBe(cacheFileName(IDENTITY));
    expect(await new CacheFile(join(dir, 'none.bin'), uid).read(API_KEY, IDENTITY)).toBeUndefined();
  });

  const tampered: Array<[string, (bytes: Buffer) => Buffer, RegExp]> = [
    ['truncated in the ciphertext', (b) => b.subarray(0, b.length - 30), /authentication tag does not match|truncated/],
    ['truncated in the header', (b) => b.subarray(0, 20), /not a run-with-secrets fallback cache/],
    ['empty', () => Buffer.alloc(0), /not a run-with-secrets fallback cache/],
    ['a flipped byte in the ciphertext', (b) => flip(b, b.length - 25), /authentication tag does not match/],
    ['a flipped byte in the tag', (b) => flip(b, b.length - 1), /authentication tag does not match/],
    ['a flipped byte in the salt', (b) => flip(b, 10), /authentication tag does not match/],
    ['an edited not_after', (b) => edit(b, /"not_after":"(\d{4})/, (m) => `"not_after":"${Number(m[1]) + 1}`), /authentication tag does not match/],
    ['an edited fetched_at', (b) => edit(b, /"fetched_at":"(\d{4})/, (m) => `"fetched_at":"${Number(m[1]) + 1}`), /authentication tag does not match/],
    ['another environment in the metadata', (b) => edit(b, /"environment":"prod"/, () => '"environment":"dev1"'), /authentication tag does not match/],
    ['format version 2', (b) => { const c = Buffer.from(b); c[4] = 2; return c; }, /format version 2; this run-with-secrets reads version 1/],
    ['a metadata length past the end', (b) => { const c = Buffer.from(b); c.writeUInt32BE(0xffffff, 49); return c; }, /truncated/],
    ['metadata that is not JSON', (b) => edit(b, /^([\s\S]{53})\{/, (m) => `${m[1]}[`), /metadata is not JSON|not an object/],
  ];
  it.each(tampered)('refuses one %s with RWS_FALLBACK_INVALID', async (_what, change, reason) => {
    const file = new CacheFile(path, uid);
    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    writeFileSync(path, change(readFileSync(path)));
    const error = await refusal(file);
    expect(error.code).toBe('RWS_FALLBACK_INVALID');
    expect(error.message).toMatch(reason);
  });

  it('refuses a file sealed with another API key, one of another job, and one that holds a bad name', async () => {
    const file = new CacheFile(path, uid);
    await file.write(metadata(), SECRETS, OTHER_KEY, Date.now());
    expect((await refusal(file)).message).toContain('sealed with another API key');
    await file.write(metadata({ environment: 'staging' }), SECRETS, API_KEY, Date.now());
    expect((await refusal(file)).message).toContain('written for another vault URL, environment, selection or API key');
    writeFileSync(path, sealCache(metadata(), new Map([['LD PRELOAD', 'x']]), API_KEY));
    expect((await refusal(file)).message).toContain('a name or value that is not valid');
    writeFileSync(path, sealCache({ ...metadata(), fetched_at: 'yesterday' }, SECRETS, API_KEY));
    expect((await refusal(file)).message).toContain('fetched_at is not an ISO 8601 UTC time');
  });

  it('refuses a symbolic link (never followed), a mode 0644 file, a directory, with RWS_FALLBACK_UNSAFE', async () => {
    const file = new CacheFile(path, uid);
    const real = join(dir, 'real.bin');
    await new CacheFile(real, uid).write(metadata(), SECRETS, API_KEY, Date.now());
    symlinkSync(real, path);
    let error = await refusal(file);
    expect(error.code).toBe('RWS_FALLBACK_UNSAFE');
    expect(error.message).toContain('it is a symbolic link');
    // Removing it removes the link, never its target.
    expect(await file.remove()).toBe(true);
    expect(readFileSync(real).length).toBeGreaterThan(0);

    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    chmodSync(path, 0o644);
    error = await refusal(file);
    expect(error.code).toBe('RWS_FALLBACK_UNSAFE');
    expect(error.message).toContain('group or others may access it (mode 644)');
    expect(error.hint).toBe(`chmod 600 ${path}: a copy is kept 0600 (it is sealed with the API key, useless without it)`);

    rmSync(path);
    mkdirSync(path);
    expect((await refusal(file)).message).toContain('it is not a regular file');
  });

  it.skipIf(uid !== 0)("refuses another user's file, even at mode 0600", async () => {
    const file = new CacheFile(path, uid);
    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    chownSync(path, 65534, 65534);
    const error = await refusal(file);
    expect(error.code).toBe('RWS_FALLBACK_UNSAFE');
    expect(error.message).toContain('owned by uid 65534, not by you');
  });

  it('a write removes the temp files of writers that died before their rename, and only theirs', async () => {
    const file = new CacheFile(path, uid);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const name = cacheFileName(IDENTITY);
    writeFileSync(join(dir, `.${name}.${dead}.aaaaaaaaaaaa.tmp`), 'sealed leftovers', { mode: 0o600 });
    writeFileSync(join(dir, `.${name}.${process.pid}.bbbbbbbbbbbb.tmp`), 'a live writer', { mode: 0o600 });
    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    expect(readdirSync(dir).sort()).toEqual([`.${name}.${process.pid}.bbbbbbbbbbbb.tmp`, name]);
  });

  it('a write never goes through a planted link, and leaves no temp file', async () => {
    const file = new CacheFile(path, uid);
    const target = join(dir, 'victim');
    writeFileSync(target, 'untouched');
    symlinkSync(target, path);
    await file.write(metadata(), SECRETS, API_KEY, Date.now());
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect((await file.read(API_KEY, IDENTITY))?.secrets).toEqual(SECRETS);
  });
});

describe('the dates of a cache', () => {
  const clock = (aheadSeconds = 0) => ({ now: () => NOW, aheadSeconds });
  const judge = (meta: CacheMetadata, maxAge = 24 * 3600, ahead = 0) => judgeCache(meta, maxAge, clock(ahead), path);
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return (error as FallbackError).code;
    }
    return 'none';
  };

  it('says the age and time left, the earlier of not_after and the client max age', () => {
    expect(judge(metadata())).toMatchObject({ ageSeconds: 3600, leftSeconds: 20 * 3600 });
    expect(judge(metadata(), 2 * 3600)).toMatchObject({ ageSeconds: 3600, leftSeconds: 3600 });
  });

  it('refuses each case with its own code: from the future, past not_after, older than the max age', () => {
    expect(code(() => judge(metadata({ fetched_at: new Date(NOW.getTime() + 120_000).toISOString() })))).toBe('RWS_FALLBACK_FUTURE');
    expect(code(() => judge(metadata({ fetched_at: new Date(NOW.getTime() + 30_000).toISOString() })))).toBe('none');
    expect(code(() => judge(metadata({ not_after: new Date(NOW.getTime() - 1000).toISOString() })))).toBe('RWS_FALLBACK_EXPIRED');
    expect(code(() => judge(metadata(), 1800))).toBe('RWS_FALLBACK_TOO_OLD');
  });

  it('the test hook only moves the judged time forward: it expires sooner, and cannot hide a file from the future', () => {
    expect(code(() => judge(metadata(), 24 * 3600, 21 * 3600))).toBe('RWS_FALLBACK_EXPIRED');
    expect(code(() => judge(metadata(), 24 * 3600, 19 * 3600))).toBe('none');
    expect(code(() => judge(metadata({ fetched_at: new Date(NOW.getTime() + 7200_000).toISOString() }), 24 * 3600, 3 * 3600))).toBe('RWS_FALLBACK_FUTURE');
  });
});

function flip(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x40;
  return copy;
}

function edit(bytes: Buffer, pattern: RegExp, replace: (match: RegExpExecArray) => string): Buffer {
  const text = bytes.toString('latin1');
  const match = pattern.exec(text);
  if (!match) throw new Error(`no ${pattern} in the file`);
  // A function, not a string: the salt's random bytes may hold `$$` or `$&`, which a replacement
  // string expands (one run in 300 of the not-JSON case edited the wrong bytes).
  return Buffer.from(text.replace(match[0], () => replace(match)), 'latin1');
}
