// Serialising secrets for the secrets file. Every format is checked by parsing the bytes back
// with the reader the child will use; a value a format cannot carry exactly is refused, never
// altered.
import { dotenvParse } from '../dotenv-parse.js';
import { FormatError } from '../errors.js';
import { isShellSetName } from '../names.js';
import { dotenvLine } from './dotenv-subset.js';
import type { Secrets } from '../sources/source.js';

export type FileFormat = 'dotenv' | 'shell' | 'json';
export const FILE_FORMATS: readonly FileFormat[] = ['dotenv', 'shell', 'json'];

type DotenvParse = (text: string) => Record<string, string>;

export function serialize(secrets: Secrets, format: FileFormat): string {
  switch (format) {
    case 'dotenv':
      return serializeDotenv(secrets, dotenvParse);
    case 'shell':
      return serializeShell(secrets);
    case 'json':
      return serializeJson(secrets);
  }
}

/**
 * Written only in the subset every common dotenv reader parses the same way (see
 * dotenv-subset.ts); the file is then parsed back with npm dotenv, the reader it is checked
 * against at run time.
 */
export function serializeDotenv(secrets: Secrets, parse: DotenvParse): string {
  const lines: string[] = [];
  for (const [name, value] of secrets) {
    const spelled = dotenvLine(name, value);
    if (!spelled.ok) throw new FormatError(name, 'dotenv', spelled.reason, 'json or --file-format shell');
    lines.push(spelled.line);
  }
  const text = lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  verifyRoundTrip(secrets, parse(text), 'dotenv');
  return text;
}

/**
 * POSIX single quotes carry every byte but NUL; a quote is written as '\'' . Not every name: the
 * shell sets some itself (dash dies on `export OPTIND='...'`, printing the value).
 */
export function serializeShell(secrets: Secrets): string {
  let text = '';
  for (const [name, value] of secrets) {
    if (isShellSetName(name)) throw new FormatError(name, 'shell', `sh or bash sets ${name} itself`, 'json');
    text += `export ${name}='${value.replace(/'/g, `'\\''`)}'\n`;
  }
  verifyRoundTrip(secrets, readShellExports(text), 'shell');
  return text;
}

/**
 * Reads back exactly the lines serializeShell writes (`export NAME='...'`, quotes as '\''), the
 * way sh does; anything else is a mismatch. Used to check the bytes before the child sees them.
 */
export function readShellExports(text: string): Record<string, string> {
  const values: Record<string, string> = Object.create(null);
  let at = 0;
  while (at < text.length) {
    const head = /^export ([A-Za-z_][A-Za-z0-9_]*)='/.exec(text.slice(at, at + 140));
    if (!head) return values;
    at += head[0].length;
    let value = '';
    for (;;) {
      const close = text.indexOf("'", at);
      if (close === -1) return values;
      value += text.slice(at, close);
      at = close + 1;
      if (text.startsWith("\\''", at)) {
        value += "'";
        at += 3;
        continue;
      }
      break;
    }
    if (text[at] !== '\n') return values;
    at += 1;
    values[head[1]!] = value;
  }
  return values;
}

/** Built by hand so a name like __proto__ is written as an ordinary key. */
export function serializeJson(secrets: Secrets): string {
  const entries = [...secrets].map(([name, value]) => `  ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  const text = entries.length === 0 ? '{}\n' : `{\n${entries.join(',\n')}\n}\n`;
  verifyRoundTrip(secrets, JSON.parse(text) as Record<string, string>, 'json');
  return text;
}

function verifyRoundTrip(secrets: Secrets, back: Record<string, string>, format: FileFormat): void {
  const keys = Object.keys(back);
  for (const [name, value] of secrets) {
    if (!Object.hasOwn(back, name) || back[name] !== value) {
      throw new FormatError(name, format, 'it does not read back unchanged', format === 'json' ? 'shell' : 'json');
    }
  }
  if (keys.length !== secrets.size) {
    const extra = keys.find((key) => !secrets.has(key)) ?? '(unknown)';
    throw new FormatError(extra, format, 'the file would define an extra variable', 'json');
  }
}
