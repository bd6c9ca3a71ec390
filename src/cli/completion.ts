// Shell completion, without yargs: `completion` prints a bash function, and the function asks
// `run-with-secrets --get-completions WORDS...` for the candidates of the last word. Words after
// `--` belong to the command, so the function completes them itself (commands, then files).
import { COMMAND_OPTIONS, OPTIONS } from './options.js';

const SUBCOMMANDS = ['token', 'keys', 'check', 'login', 'logout', 'whoami', 'fallback', 'completion'] as const;
const TOKEN_ACTIONS = ['generate', 'revoke'] as const;
const TOKEN_OPTIONS = ['--usage-limit', '--json', '--force'];

export const COMPLETION_SCRIPT = `# bash completion for run-with-secrets: source <(run-with-secrets completion)
# zsh: autoload -U +X bashcompinit && bashcompinit, then the same line.
_run_with_secrets_complete() {
  local cur=\${COMP_WORDS[COMP_CWORD]} i
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ \${COMP_WORDS[i]} == -- ]]; then
      COMPREPLY=()
      # The command after --: a command name; its arguments: files (complete -o default).
      if ((i + 1 == COMP_CWORD)); then mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u); fi
      return 0
    fi
  done
  mapfile -t COMPREPLY < <(run-with-secrets --get-completions "\${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)
  return 0
}
complete -o default -F _run_with_secrets_complete run-with-secrets
`;

const STRING_OPTIONS = new Map<string, (typeof OPTIONS)[number]>();
for (const spec of OPTIONS) {
  // --fallback takes its value only as --fallback=PATH: the next word is never its value.
  if (spec.type === 'string' && spec.name !== 'fallback') {
    STRING_OPTIONS.set(`--${spec.name}`, spec);
    if (spec.alias) STRING_OPTIONS.set(`-${spec.alias}`, spec);
  }
}
STRING_OPTIONS.set('--usage-limit', { name: 'usage-limit', type: 'string', description: '', group: 'Vault' });

/**
 * Candidates for the last of `words` (the program name first, as in COMP_WORDS). bash splits
 * `--inject-as=f` into `--inject-as`, `=`, `f`, so an `=` word joins an option to its value.
 */
export function completeWords(words: readonly string[]): string[] {
  const line = words.slice(1);
  let current = line[line.length - 1] ?? '';
  let previous = line[line.length - 2];
  if (current === '=') {
    current = '';
  } else if (previous === '=') {
    previous = line[line.length - 3];
  } else if (current.startsWith('--') && current.includes('=')) {
    previous = current.slice(0, current.indexOf('='));
    current = current.slice(current.indexOf('=') + 1);
  }
  if (line.length === 0) return [];
  const valueOf = previous === undefined ? undefined : STRING_OPTIONS.get(previous);
  if (valueOf || words[words.length - 1] === '=') {
    // A value: its choices, or nothing (bash then completes file names).
    return [...(valueOf?.choices ?? [])].filter((choice) => choice.startsWith(current));
  }
  const positionals = positionalWords(line.slice(0, -1));
  if (current.startsWith('-')) {
    // A subcommand is offered only the options it reads, as its --help lists them.
    const command = Object.hasOwn(COMMAND_OPTIONS, positionals[0] ?? '') ? (positionals[0] as keyof typeof COMMAND_OPTIONS) : undefined;
    const specs = command ? OPTIONS.filter((spec) => COMMAND_OPTIONS[command].includes(spec.name)) : OPTIONS;
    const names = specs.flatMap((spec) => [`--${spec.name}`, ...(spec.alias ? [`-${spec.alias}`] : [])]);
    if (positionals[0] === 'token') names.push(...TOKEN_OPTIONS);
    if (positionals[0] === 'logout') names.push('--all');
    names.push('--help', '--version', '--');
    return names.filter((name) => name.startsWith(current));
  }
  if (positionals.length === 0) return SUBCOMMANDS.filter((name) => name.startsWith(current));
  if (positionals.length === 1 && positionals[0] === 'token') return TOKEN_ACTIONS.filter((name) => name.startsWith(current));
  if (positionals.length === 1 && positionals[0] === 'fallback') return ['clean'].filter((name) => name.startsWith(current));
  return [];
}

/** Words that are neither options nor option values (the subcommand and its action). */
function positionalWords(words: readonly string[]): string[] {
  const positionals: string[] = [];
  for (let index = 0; index < words.length; index++) {
    const word = words[index]!;
    if (word === '=') {
      index++;
      continue;
    }
    if (word.startsWith('-')) {
      if (STRING_OPTIONS.has(word) && words[index + 1] !== '=') index++;
      continue;
    }
    positionals.push(word);
  }
  return positionals;
}
