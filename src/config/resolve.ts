// Turns parsed flags and the environment into a finished plan, validating everything once. The
// only module that looks at the parent environment's meaning (the CLI passes it in).
import { tmpdir } from 'node:os';
import { isatty } from 'node:tty';
import { UsageError } from '../errors.js';
import { isValidPattern } from '../glob.js';
import { isProtectedName, isValidName } from '../names.js';
import type { ParsedArgs } from '../cli/options.js';
import type { LogFormat, LogLevel } from '../cli/output.js';
import type { FileFormat } from '../inject/file-format.js';
import type { InjectMode, RunPlan } from '../run.js';
import { EnvFileSource } from '../sources/env-file.js';

export interface Logging {
  level: LogLevel;
  format: LogFormat;
}

export interface ProcessFacts {
  env: Readonly<Record<string, string | undefined>>;
  uid: number;
  onTerminal: boolean;
}

/** The one place that reads the parent's environment and terminal. */
export function readProcessFacts(): ProcessFacts {
  return {
    env: { ...process.env },
    uid: process.getuid?.() ?? -1,
    // On a terminal, Ctrl-C already reaches the child through the foreground process group.
    onTerminal: isatty(0) || isatty(1) || isatty(2),
  };
}

export function resolveLogging(values: ParsedArgs['values']): Logging {
  const format = values['log-format'] ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, got ${describe(format)}`);
  if (values.quiet === true && values.verbose === true) throw new UsageError('--quiet and --verbose cannot be used together');
  return { format, level: values.quiet === true ? 'quiet' : values.verbose === true ? 'verbose' : 'normal' };
}

export function resolveRunPlan(args: ParsedArgs, facts: ProcessFacts): RunPlan {
  const values = args.values;
  if (args.words.length > 0) {
    throw new UsageError(`unknown command ${describe(args.words[0])}; put -- before the program to run`, 'run-with-secrets [options] -- <command> [args...]');
  }
  const dryRun = values['dry-run'] === true;
  const command = args.command ?? [];
  if (command.length === 0 && !dryRun) {
    throw new UsageError('no command given', 'run-with-secrets [options] -- <command> [args...]');
  }
  const envFiles = list(values['env-file']);
  if (envFiles.length === 0) {
    throw new UsageError('no source of secrets given', 'pass --env-file PATH (the vault client comes in a later version)');
  }
  const patterns = list(values['key-pattern']);
  for (const pattern of patterns) {
    if (!isValidPattern(pattern)) throw new UsageError(`--key-pattern ${describe(pattern)} is not a valid pattern`, 'patterns use letters, digits, _ and the wildcards * and ?');
  }
  const keys = list(values.key);
  for (const key of keys) {
    if (!isValidName(key)) throw new UsageError(`--key ${describe(key)} is not a valid variable name`, 'names match [A-Za-z_][A-Za-z0-9_]*');
  }
  const keepEnv = list(values['keep-env']);
  for (const pattern of keepEnv) {
    if (!isValidPattern(pattern)) throw new UsageError(`--keep-env ${describe(pattern)} is not a variable name or glob`);
  }
  const allowNames = list(values['allow-name']);
  for (const name of allowNames) {
    if (!isValidName(name)) throw new UsageError(`--allow-name ${describe(name)} is not a valid variable name`);
  }
  const injectAs = oneOf<InjectMode>('--inject-as', values['inject-as'] ?? 'env', ['env', 'file', 'fd']);
  const fileFormat = oneOf<FileFormat>('--file-format', values['file-format'] ?? 'dotenv', ['dotenv', 'shell', 'json']);
  const fileVar = String(values['file-var'] ?? 'SECRETS_FILE');
  if (!isValidName(fileVar) || isProtectedName(fileVar)) {
    throw new UsageError(`--file-var ${describe(fileVar)} must be a valid, unprotected variable name`);
  }
  if (injectAs === 'fd' && process.platform !== 'linux') {
    throw new UsageError('--inject-as fd needs Linux (/dev/fd of an unlinked file)', 'use --inject-as file');
  }
  return {
    sources: envFiles.map((path) => new EnvFileSource(path)),
    selection: { patterns, keys, allowNames: new Set(allowNames) },
    injectAs,
    fileVar,
    fileFormat,
    keepEnv,
    pristine: values.pristine === true,
    mask: values.mask === true,
    dryRun,
    killAfterMs: parseKillAfter(values['kill-after']),
    command: command[0] ?? '',
    args: command.slice(1),
    parentEnv: facts.env,
    placement: { xdgRuntimeDir: facts.env.XDG_RUNTIME_DIR, tmpDir: tmpdir(), uid: facts.uid },
    onTerminal: facts.onTerminal,
  };
}

function parseKillAfter(value: ParsedArgs['values'][string]): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
    throw new UsageError(`--kill-after expects a number of seconds between 0 and 86400, got ${describe(text)}`);
  }
  return Math.round(seconds * 1000);
}

function oneOf<T extends string>(flag: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag} must be one of ${choices.join(', ')}, got ${describe(value)}`);
}

function list(value: ParsedArgs['values'][string]): string[] {
  if (value === undefined || typeof value === 'boolean') return [];
  return Array.isArray(value) ? value : [value];
}

/** Quotes user input for a message, shortened: flags never carry secrets, but keep lines short. */
function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
