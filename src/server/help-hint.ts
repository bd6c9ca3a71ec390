// The hint of a usage error names the help page of the command it came from: the top-level page
// lists commands, not `secret set`'s two positionals or `serve`'s flags, so sending everyone
// there left them one step short of what to do.

/** The commands of cli.ts, each with its subcommands (a test runs `--help` of every one). */
export const COMMAND_TREE: Readonly<Record<string, readonly string[]>> = {
  init: [],
  secret: ['set', 'import', 'list', 'rm'],
  apikey: ['create', 'list', 'revoke'],
  db: ['migrate', 'status', 'import'],
  audit: ['verify'],
  status: [],
  serve: [],
};

export const GENERAL_HINT = 'see secrets-server --help';

/** `see secrets-server secret set --help` for `secret set production`, the general hint when no command is known. */
export function helpHint(argv: readonly string[]): string {
  const [first, second] = argv;
  const subcommands = first === undefined ? undefined : COMMAND_TREE[first];
  if (subcommands === undefined || !Object.hasOwn(COMMAND_TREE, first as string)) return GENERAL_HINT;
  const words = second !== undefined && subcommands.includes(second) ? [first, second] : [first];
  return `see secrets-server ${words.join(' ')} --help`;
}
