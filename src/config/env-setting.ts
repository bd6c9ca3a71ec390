// RWS_X settings from the environment. Each may instead be given as RWS_X_FILE naming a file
// that holds the value (Docker and Kubernetes secrets); the file's content is trimmed.
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';

export async function readEnvSetting(env: Readonly<Record<string, string | undefined>>, name: string): Promise<string | undefined> {
  const direct = env[name];
  if (direct !== undefined && direct !== '') return direct.trim();
  const path = env[`${name}_FILE`];
  if (!path) return undefined;
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError('RWS_CONFIG_UNREADABLE', `cannot read ${name}_FILE ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'error')}`, `check ${name}_FILE`);
  }
}
