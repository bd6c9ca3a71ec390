// The one spelling of a dotenv line that every common reader takes the same way. Checked by
// experiment against npm dotenv, Node's util.parseEnv / process.loadEnvFile, python-dotenv 0.21
// (interpolation on, its default), Ruby dotenv 2.4 and godotenv 1.5 (test/integration/
// dotenv-readers.test.ts runs them). Each has its own escapes and expansions; the subset avoids
// all of them:
//   - no line break or CR anywhere: Ruby dotenv splits the file on [\r\n]+ before parsing, and
//     Node and python-dotenv rewrite a CR;
//   - `NAME='value'` when the value holds no `'`, no `${` (python-dotenv expands it even inside
//     single quotes), no backslash before `\` or `'` (python-dotenv unescapes those) and does not
//     end in a backslash (godotenv and python-dotenv read `\'` as an escaped quote);
//   - otherwise `NAME="value"` when the value holds no `"`, no `\` (every reader unescapes in
//     double quotes, each differently) and no `$` (Ruby and godotenv expand variables, Ruby runs
//     `$(...)`).
// Anything else has no spelling that all of them read back unchanged, so it is refused.

export type DotenvLine = { ok: true; line: string } | { ok: false; reason: string };

export function dotenvLine(name: string, value: string): DotenvLine {
  if (value.includes('\n')) return refuse('it holds a line break, which Ruby dotenv cannot read inside quotes');
  if (value.includes('\r')) return refuse('it holds a carriage return, which most dotenv readers rewrite');
  const single = singleQuoteProblem(value);
  if (single === undefined) return { ok: true, line: `${name}='${value}'` };
  const double = doubleQuoteProblem(value);
  if (double === undefined) return { ok: true, line: `${name}="${value}"` };
  return refuse(`${single}, and ${double}`);
}

function singleQuoteProblem(value: string): string | undefined {
  if (value.includes("'")) return "single quotes cannot hold its '";
  if (value.includes('${')) return 'single quotes cannot hold its ${ (python-dotenv expands it)';
  if (/\\[\\']/.test(value) || value.endsWith('\\')) return 'single quotes cannot hold its backslash (python-dotenv and godotenv read it as an escape)';
  return undefined;
}

function doubleQuoteProblem(value: string): string | undefined {
  if (value.includes('"')) return 'double quotes cannot hold its "';
  if (value.includes('\\')) return 'double quotes cannot hold its backslash';
  if (value.includes('$')) return 'double quotes cannot hold its $ (Ruby dotenv and godotenv expand it)';
  return undefined;
}

function refuse(reason: string): DotenvLine {
  return { ok: false, reason };
}
