// Reads one secret line for `login`: from a pipe or file as given, or from a terminal through a
// prompt that echoes nothing. The terminal is put in raw mode (no echo, no line editing, Ctrl-C
// arrives as a byte rather than a signal) and restored on every way out; should a signal end the
// process meanwhile, Node itself resets the terminal mode on its way out (ResetStdio).
import type { Readable, Writable } from 'node:stream';
import { LoginError, UsageError } from '../errors.js';

export interface SecretInput extends Readable {
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?(mode: boolean): unknown;
}

const MAX_CHARACTERS = 8192;
const ENTER = new Set(['\r', '\n']);
const ERASE = new Set(['\x7f', '\b']);
const CTRL_C = '\x03';
const CTRL_D = '\x04';
const CTRL_U = '\x15';

/** The secret, trimmed; `prompt` is shown (on `echo`, a terminal) only when `input` is a terminal. */
export async function readSecretLine(input: SecretInput, echo: Writable, prompt: string): Promise<string> {
  const text = input.isTTY === true && typeof input.setRawMode === 'function' ? await readHidden(input, echo, prompt) : await readAll(input);
  return text.trim();
}

function readHidden(input: SecretInput, echo: Writable, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const wasRaw = input.isRaw === true;
    // Raw mode before the prompt: a key typed as soon as the prompt shows must never be echoed.
    input.setRawMode!(true);
    echo.write(prompt);
    const finish = (error?: Error): void => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.setRawMode!(wasRaw);
      input.pause();
      echo.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const character of String(chunk)) {
        if (ENTER.has(character)) return finish();
        if (character === CTRL_C || (character === CTRL_D && text === '')) return finish(cancelled());
        if (ERASE.has(character)) text = [...text].slice(0, -1).join('');
        else if (character === CTRL_U) text = '';
        else if (character >= ' ') text += character;
        if (text.length > MAX_CHARACTERS) return finish(tooLong());
      }
    };
    const onEnd = (): void => finish(cancelled());
    input.setEncoding('utf8');
    input.on('data', onData);
    input.once('end', onEnd);
    input.resume();
  });
}

async function readAll(input: Readable): Promise<string> {
  let text = '';
  input.setEncoding('utf8');
  for await (const chunk of input as AsyncIterable<string>) {
    text += chunk;
    if (text.length > MAX_CHARACTERS) throw tooLong();
  }
  return text;
}

function cancelled(): LoginError {
  return new LoginError('RWS_LOGIN_CANCELLED', 'login cancelled at the prompt; nothing was stored', 'run run-with-secrets login again when you have the key');
}

function tooLong(): UsageError {
  return new UsageError(`the input is longer than ${MAX_CHARACTERS} characters; an API key is 39`, "pipe in only the key printed by 'secrets-server apikey create'");
}
