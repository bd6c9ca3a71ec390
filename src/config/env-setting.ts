// RWS_X settings from the environment. Each may instead be given as RWS_X_FILE naming a file
// that holds the value (Docker and Kubernetes secrets); the file's content is trimmed.
import { ConfigError } from '../errors.js';
import { readLocalFile, ReadProblem } from '../local-file.js';

export async function readEnvSetting(env: Readonly<Record<string, string | undefined>>, name: string): Promise<string | undefined> {
  const direct = env[name];
  if (direct !== undefined && direct !== '') return direct.trim();
  const path = env[`${name}_FILE`];
  if (!path) return undefined;
  let text: string;
  try {
    text = (await readLocalFile(path, { maxBytes: 64 * 1024, allowPipe: false })).text.trim();
  } catch (error) {
    if (!(error instanceof ReadProblem)) throw error;
    throw new ConfigError(error.kind === 'unreadable' ? 'RWS_CONFIG_UNREADABLE' : 'RWS_CONFIG_INVALID', `cannot read ${name}_FILE ${path}: ${error.reason}`, `check ${name}_FILE`);
  }
  return text === '' ? undefined : text;
}
