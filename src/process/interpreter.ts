// execve answers ENOENT both for a command that is not there and for one whose interpreter is
// not: a script's `#!` line naming a program this host lacks (`#!/usr/bin/python` where only
// python3 is installed), or ending in a carriage return (`#!/bin/sh\r`, a script saved with
// Windows line endings). "command not found" would send the operator to PATH, looking for a file
// that is right there; the #! line says where to look.
import { accessSync, closeSync, constants, openSync, readSync } from 'node:fs';
import { commandCandidates } from './command-path.js';

/** Linux reads at most this much of a #! line (BINPRM_BUF_SIZE, fs/binfmt_script.c). */
const SHEBANG_BYTES = 256;
const BLANKS = new Set([0x20, 0x09]);
const ENDS = new Set([0x20, 0x09, 0x0a, 0x00]);

/** The interpreter a script's #! line names, when that interpreter cannot be found; else undefined. */
export function missingInterpreter(command: string, path: string | undefined): string | undefined {
  const file = commandCandidates(command, path).find(isExecutable);
  if (file === undefined) return undefined;
  const interpreter = shebangInterpreter(readHead(file));
  if (interpreter === undefined) return undefined;
  try {
    accessSync(interpreter, constants.F_OK);
    return undefined;
  } catch {
    return interpreter.toString('utf8');
  }
}

/** As the kernel splits the line: after `#!` and any blanks, up to the next blank or line end. */
export function shebangInterpreter(head: Buffer): Buffer | undefined {
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  let start = 2;
  while (start < head.length && BLANKS.has(head[start]!)) start++;
  let end = start;
  while (end < head.length && !ENDS.has(head[end]!)) end++;
  return end > start ? head.subarray(start, end) : undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function readHead(file: string): Buffer {
  let fd: number | undefined;
  try {
    // O_NONBLOCK: a FIFO where the command was looked for must not hold the error report.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const buffer = Buffer.alloc(SHEBANG_BYTES);
    return buffer.subarray(0, readSync(fd, buffer, 0, SHEBANG_BYTES, 0));
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
