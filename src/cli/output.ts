// Diagnostics on stderr: levels (-q, default, -v), text or one JSON object per line (cron), and
// colour only on a terminal with NO_COLOR unset. Callers pass names, never values. Messages quote
// paths and command names as given, and a newline or an escape sequence in one would split the
// line or act on the terminal: every line is one line, its control characters escaped.
import type { Writable } from 'node:stream';
import type { RwsError } from '../errors.js';
import { redactCredentials } from '../credential-shapes.js';
import { printable, printableJson } from '../printable.js';

export type LogLevel = 'quiet' | 'normal' | 'verbose';
export type LogFormat = 'text' | 'json';

export interface Logger {
  error(error: RwsError): void;
  warn(code: string, message: string): void;
  info(message: string): void;
  /** Something a long-running wrapper's log must show without -v (a --watch restart); not with -q. */
  notice(message: string): void;
  debug(message: string): void;
  /**
   * One transient line on a terminal (what a slow step waits for), replaced by the next and
   * erased with undefined. Nothing on a pipe, under cron, with -q or JSON logs.
   */
  progress(text: string | undefined): void;
}

export interface LoggerOptions {
  stream: Writable;
  /** The stream is a terminal: only then may a progress line be drawn and erased. */
  terminal?: boolean;
  level: LogLevel;
  format: LogFormat;
  color: boolean;
  program: string;
  now?: () => Date;
}

type Paint = (text: string) => string;
interface Palette { red: Paint; yellow: Paint; dim: Paint; bold: Paint }
const plain: Palette = { red: (t) => t, yellow: (t) => t, dim: (t) => t, bold: (t) => t };

/** Colour when stderr is a terminal and NO_COLOR (https://no-color.org) is unset or empty. */
export function wantsColor(isTTY: boolean | undefined, env: Readonly<Record<string, string | undefined>>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

// The one place every line passes through takes out API keys and tokens, whoever wrote the message.
export { redactCredentials };

export async function createLogger(options: LoggerOptions): Promise<Logger> {
  // chalk is loaded only when colour will be used: most runs (cron, pipes) never pay for it.
  let palette = plain;
  if (options.color && options.format === 'text') {
    const { Chalk } = await import('chalk');
    const chalk = new Chalk({ level: 1 });
    palette = { red: chalk.red, yellow: chalk.yellow, dim: chalk.dim, bold: chalk.bold };
  }
  const now = options.now ?? (() => new Date());
  let progressShown = false;
  const eraseProgress = (): void => {
    if (!progressShown) return;
    progressShown = false;
    options.stream.write('\r\u001b[K');
  };
  const write = (line: string): void => {
    eraseProgress();
    options.stream.write(`${redactCredentials(line)}\n`);
  };
  const drawsProgress = options.terminal === true && options.format === 'text' && options.level !== 'quiet';
  const json = (level: string, fields: Record<string, string | undefined>): void => {
    write(printableJson({ time: now().toISOString(), level, program: options.program, ...fields }));
  };
  const prefix = `${options.program}:`;
  return {
    error(error) {
      if (options.format === 'json') return json('error', { code: error.code, message: error.message, hint: error.hint });
      const hint = error.hint ? palette.dim(` (hint: ${printable(error.hint)})`) : '';
      write(`${prefix} ${palette.red(palette.bold('error'))} ${error.code}: ${printable(error.message)}${hint}`);
    },
    warn(code, message) {
      if (options.level === 'quiet') return;
      if (options.format === 'json') return json('warn', { code, message });
      write(`${prefix} ${palette.yellow('warning')} ${code}: ${printable(message)}`);
    },
    notice(message) {
      if (options.level === 'quiet') return;
      if (options.format === 'json') return json('notice', { message });
      write(`${prefix} ${printable(message)}`);
    },
    info(message) {
      if (options.level !== 'verbose') return;
      if (options.format === 'json') return json('info', { message });
      write(`${prefix} ${printable(message)}`);
    },
    debug(message) {
      if (options.level !== 'verbose') return;
      if (options.format === 'json') return json('debug', { message });
      write(palette.dim(`${prefix} ${printable(message)}`));
    },
    progress(text) {
      if (!drawsProgress) return;
      if (text === undefined) return eraseProgress();
      // One line at most: the terminal erases only the line the cursor is on. Redacted as every
      // line is: a request's path may name a key the vault listed.
      options.stream.write(`\r\u001b[K${palette.dim(redactCredentials(`${prefix} ${printable(text)}`).slice(0, 200))}`);
      progressShown = true;
    },
  };
}
