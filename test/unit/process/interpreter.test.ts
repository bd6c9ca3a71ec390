import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingInterpreter, shebangInterpreter } from '../../../src/process/interpreter.js';

const dir = mkdtempSync(join(tmpdir(), 'rws-interp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, text: string | Buffer, mode = 0o755): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('shebangInterpreter, split as the kernel splits it', () => {
  it.each([
    ['#!/bin/sh\n', '/bin/sh'],
    ['#! /usr/bin/env python3\n', '/usr/bin/env'],
    ['#!\t/bin/sh -e\n', '/bin/sh'],
    ['#!/bin/sh\r\n', '/bin/sh\r'],
    ['#!/bin/sh', '/bin/sh'],
  ])('%j names %j', (text, interpreter) => {
    expect(shebangInterpreter(Buffer.from(text))?.toString()).toBe(interpreter);
  });

  it.each(['', '#', '#!', '#!   \n', 'echo hi\n', '\u007fELF'])('%j names none', (text) => {
    expect(shebangInterpreter(Buffer.from(text))).toBeUndefined();
  });
});

describe('missingInterpreter', () => {
  it('names an interpreter that does not exist, by path or found on PATH', () => {
    const path = script('missing', '#!/no/such/interpreter -x\necho\n');
    expect(missingInterpreter(path, undefined)).toBe('/no/such/interpreter');
    expect(missingInterpreter('missing', `/nonexistent:${dir}`)).toBe('/no/such/interpreter');
  });

  it('names none for a script whose interpreter exists, a missing command, a file that is not executable, or a binary', () => {
    expect(missingInterpreter(script('fine', '#!/bin/sh\n'), undefined)).toBeUndefined();
    expect(missingInterpreter(join(dir, 'absent'), undefined)).toBeUndefined();
    expect(missingInterpreter(script('no-x', '#!/no/such/interpreter\n', 0o644), undefined)).toBeUndefined();
    expect(missingInterpreter('sh', '/usr/bin:/bin')).toBeUndefined();
    expect(missingInterpreter(dir, undefined)).toBeUndefined();
  });
});
