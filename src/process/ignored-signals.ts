// Signals ignored when the wrapper was started (nohup ignores SIGHUP; a background job of a
// non-interactive shell ignores SIGINT and SIGQUIT) stay ignored, as they would under env(1) or
// exec: the wrapper neither dies of them nor forwards them, and the child inherits them ignored.
// Node resets every disposition at start-up and libuv resets them again in the child, so the
// launcher (bin/run-with-secrets.js) reads the set before node starts, and the child is started
// through sh, which ignores them again before exec'ing the command.
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { constants } from 'node:os';
import { commandCandidates } from './command-path.js';

/** The signals whose bits are set in a SigIgn mask (hex, bit N-1 for signal N). */
export function parseSigIgnMask(mask: string | undefined): NodeJS.Signals[] {
  if (!mask || !/^[0-9a-fA-F]{1,16}$/.test(mask)) return [];
  const bits = BigInt(`0x${mask}`);
  const ignored: NodeJS.Signals[] = [];
  for (const [name, number] of Object.entries(constants.signals) as Array<[NodeJS.Signals, number]>) {
    if (number >= 1 && number <= 64 && name !== 'SIGKILL' && name !== 'SIGSTOP' && (bits >> BigInt(number - 1)) & 1n) ignored.push(name);
  }
  return ignored;
}

/** argv that runs `command` with `ignored` set to SIG_IGN: sh's trap, then exec. */
export function commandIgnoring(ignored: readonly NodeJS.Signals[], command: string, args: readonly string[]): { command: string; args: string[] } {
  const numbers = ignored.map((signal) => constants.signals[signal]).join(' ');
  return { command: '/bin/sh', args: ['-c', `trap '' ${numbers} && exec "$0" "$@"`, command, ...args] };
}

/**
 * What spawn would have reported, had it exec'd the command itself: sh would print its own
 * message instead of ours. undefined when the command can be run.
 */
export function lookupFailure(command: string, path: string | undefined): 'ENOENT' | 'EACCES' | undefined {
  let found = false;
  for (const candidate of commandCandidates(command, path)) {
    try {
      const isFile = statSync(candidate).isFile();
      found = true;
      if (!isFile) continue;
    } catch {
      continue;
    }
    try {
      accessSync(candidate, fsConstants.X_OK);
      return undefined;
    } catch {
      // Keep looking: a later PATH entry may hold an executable one, as execvp does.
    }
  }
  return found ? 'EACCES' : 'ENOENT';
}
