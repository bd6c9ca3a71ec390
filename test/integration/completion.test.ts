// Completion as bash runs it: the script is sourced, bash's `complete -p` names the function,
// and the function is called with COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT set and the
// three arguments bash passes; what it leaves in COMPREPLY is what the user would be offered.
import { execa } from 'execa';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, baseEnv, makeRuntimeDir, removeDir } from '../helpers/cli.js';

let dir: string;
let binDir: string;
beforeAll(() => {
  dir = makeRuntimeDir();
  // The script calls run-with-secrets by name, as an installed package is found on PATH.
  binDir = join(dir, 'bin');
  mkdirSync(binDir);
  symlinkSync(BIN, join(binDir, 'run-with-secrets'));
});
afterAll(() => removeDir(dir));

const HARNESS = `
source <(run-with-secrets completion) || exit 3
spec=$(complete -p run-with-secrets) || exit 4
function=$(sed -E 's/.* -F ([^ ]+) .*/\\1/' <<< "$spec")
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=\${#COMP_LINE}
COMPREPLY=()
"$function" run-with-secrets "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "$spec" "\${COMPREPLY[@]}"
`;

/** What bash would offer for the last of `words` (COMP_WORDS as bash splits the line). */
async function offered(...words: string[]): Promise<{ spec: string; candidates: string[] }> {
  const result = await execa('bash', ['-c', HARNESS, 'bash', 'run-with-secrets', ...words], {
    env: baseEnv(dir, { PATH: `${binDir}:${process.env.PATH}` }),
    extendEnv: false,
    reject: false,
    // Not a pipe: bash takes a socket on stdin for sshd and would read ~/.bashrc.
    stdin: 'ignore',
  });
  expect(result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
  const [spec, ...candidates] = result.stdout.split('\n');
  return { spec: spec!, candidates: candidates.filter((line) => line !== '') };
}

describe('bash completion', () => {
  it('registers a function for run-with-secrets, with file names as the fallback', async () => {
    const { spec } = await offered('');
    expect(spec).toMatch(/^complete -o default -F \S+ run-with-secrets$/);
  });

  it('offers the subcommands first, and a token action after token', async () => {
    expect((await offered('')).candidates).toEqual(['token', 'keys', 'check', 'login', 'logout', 'whoami', 'fallback', 'completion']);
    expect((await offered('k')).candidates).toEqual(['keys']);
    expect((await offered('logout', '--a')).candidates).toEqual(['--all']);
    expect((await offered('login', '--')).candidates).not.toContain('--environment');
    expect((await offered('token', '')).candidates).toEqual(['generate', 'revoke']);
    expect((await offered('fallback', '')).candidates).toEqual(['clean']);
    expect((await offered('fallback', 'clean', '--')).candidates).toEqual(['--fallback', '--quiet', '--verbose', '--log-format', '--help', '--version', '--']);
    // --fallback takes a value only as --fallback=PATH: the next word is the subcommand's, or an option.
    expect((await offered('--fallback', '--off')).candidates).toEqual(['--offline']);
  });

  it('completes option names, and the choices of an option value', async () => {
    expect((await offered('--inj')).candidates).toEqual(['--inject-as']);
    expect((await offered('--env-file', '.env', '--inject-as', '')).candidates).toEqual(['env', 'file', 'fd']);
    expect((await offered('--file-format', 'j')).candidates).toEqual(['json']);
    // bash splits --file-format=j at the = (COMP_WORDBREAKS).
    expect((await offered('--file-format', '=', 'j')).candidates).toEqual(['json']);
    expect((await offered('token', 'generate', '--us')).candidates).toEqual(['--usage-limit']);
    // A subcommand is offered its own options only.
    expect((await offered('keys', '--')).candidates).not.toContain('--inject-as');
    expect((await offered('keys', '--')).candidates).toContain('--environment');
  });

  it('leaves a file-name value and the command after -- to bash', async () => {
    expect((await offered('--env-file', '')).candidates).toEqual([]);
    expect((await offered('--env-file', 'x', '--', 'bas')).candidates).toContain('bash');
    expect((await offered('--env-file', 'x', '--', 'node', '--inj')).candidates).toEqual([]);
  });

  it('prints no error into the terminal, whatever the line', async () => {
    for (const words of [['-e', 'prod', 'run-with-secrets', ''], ['--bogus', ''], ['token', 'generate', 'x', ''], ['=']]) {
      await offered(...words);
    }
  });
});
