// A developer's local dotenv file. Parsed by the `dotenv` package so it reads the way the
// developer's app reads it; a group/other-readable file only warns (they often are).
import { dotenvProblems } from '../dotenv-lines.js';
import { dotenvParse } from '../dotenv-parse.js';
import { isExposed, modeText, readLocalFile } from '../local-file.js';
import { sourceError, type LoadContext, type SecretSource, type Secrets } from './source.js';

/** Refuse absurd inputs before parsing: a .env is small; 16 MiB leaves room for certificates. */
const MAX_BYTES = 16 * 1024 * 1024;
/** Lines dotenv misreads that are named one by one; past these, one more warning says there are more. */
const MAX_LINE_WARNINGS = 5;

export class EnvFileSource implements SecretSource {
  readonly label: string;

  constructor(readonly path: string) {
    this.label = `.env file ${path}`;
  }

  async load(context: LoadContext): Promise<Secrets> {
    let file;
    try {
      // A pipe is fine: `--env-file <(sops -d .env.enc)` is a common way to feed decrypted files.
      file = await readLocalFile(this.path, { maxBytes: MAX_BYTES, allowPipe: true });
    } catch (error) {
      throw sourceError(this.path, error, 'check the path given to --env-file');
    }
    // Developers' .env files often are group-readable: a warning, not a refusal, and only when
    // someone can actually get to the file.
    if (isExposed(file.mode)) {
      const { fileExposure } = await import('../file-exposure.js');
      const exposure = await fileExposure(this.path);
      if (exposure !== undefined) {
        context.warn('RWS_SOURCE_PERMISSIONS', `${this.path} is readable by ${exposure === 'others' ? 'other users' : 'its group'} (mode ${modeText(file.mode)}, and its directories let them through); consider chmod 600 ${this.path}`);
      } else {
        context.debug(`${this.path} has mode ${modeText(file.mode)}, but its directories keep group and others out`);
      }
    }
    const text = file.text;
    // Read as dotenv reads it, as the developer's app will; but a line it skips or cuts short is
    // said, by number only (the line may hold a secret), instead of vanishing without a word.
    const problems = dotenvProblems(text, MAX_LINE_WARNINGS + 1);
    for (const { line, why } of problems.slice(0, MAX_LINE_WARNINGS)) {
      context.warn('RWS_ENV_FILE_LINE', `line ${line} of ${this.path} ${why}; read as dotenv reads it`);
    }
    if (problems.length > MAX_LINE_WARNINGS) context.warn('RWS_ENV_FILE_LINE', `${this.path} has more lines that dotenv skips or misreads after line ${problems[MAX_LINE_WARNINGS - 1]!.line}`);
    const parsed = dotenvParse(text);
    // dotenv returns a plain object; copy own keys into a Map so no name can reach a prototype.
    const secrets: Secrets = new Map();
    for (const name of Object.keys(parsed)) secrets.set(name, parsed[name] as string);
    context.debug(`read ${secrets.size} entries from ${this.label}`);
    return secrets;
  }
}
