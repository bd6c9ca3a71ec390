// The optional YAML config file: `--config PATH`, else ./.run-with-secrets.yaml, else
// ~/.config/run-with-secrets/config.yaml. Unknown keys are errors; values may be ${VAR}
// references; a file that holds a credential itself must be private (like ssh's keys), one
// without credentials may be shared and committed.
import { ConfigError } from '../errors.js';
import { isExposed, modeText, ReadProblem, readLocalFile } from '../local-file.js';

export interface ConfigValues {
  vault_url?: string;
  environment?: string;
  key_patterns?: string[];
  inject_as?: string;
  keep_env?: string[];
  credentials?: { api_key?: string };
  ca_file?: string;
  timeout?: number;
  retries?: number;
}

export interface ConfigFile {
  path: string;
  values: ConfigValues;
  profiles: string[];
}

const STRING_KEYS = ['vault_url', 'environment', 'inject_as', 'ca_file'] as const;
const LIST_KEYS = ['key_patterns', 'keep_env'] as const;
const NUMBER_KEYS = ['timeout', 'retries'] as const;
const TOP_KEYS = new Set<string>([...STRING_KEYS, ...LIST_KEYS, ...NUMBER_KEYS, 'credentials', 'profiles']);
const MAX_BYTES = 1024 * 1024;

/** Reads and validates a config file, applying `profile` over the top level. */
export async function loadConfigFile(path: string, profile: string | undefined, env: Readonly<Record<string, string | undefined>>): Promise<ConfigFile> {
  const { text, mode } = await readConfig(path);
  const { parseDocument } = await import('yaml');
  let raw: unknown;
  try {
    // The core schema with unique keys; no custom tags, no aliases blow-up beyond yaml's own limit.
    // yaml's warnings (an unknown tag such as !!js/function) would go to stderr as a multi-line
    // process warning: they are refusals here, in our one-line form.
    const doc = parseDocument(text, { schema: 'core', uniqueKeys: true, logLevel: 'silent' });
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) throw problem;
    raw = doc.toJS({ maxAliasCount: 20 });
  } catch (error) {
    throw new ConfigError('RWS_CONFIG_INVALID', `${path} is not valid YAML: ${describeYamlProblem(error)}`, 'fix the syntax');
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isPlainObject(raw)) throw new ConfigError('RWS_CONFIG_INVALID', `${path} must be a mapping of settings`);
  const top = validateSection(raw, path, '', true);
  const profiles = raw.profiles === undefined ? {} : raw.profiles;
  if (!isPlainObject(profiles)) throw new ConfigError('RWS_CONFIG_INVALID', `${path}: profiles must be a mapping of name to settings`);
  // Every profile is checked, not only the one in use: a typo should not wait for the prod run.
  const sections = new Map<string, ConfigValues>();
  for (const name of Object.keys(profiles)) {
    const section = profiles[name];
    if (!isPlainObject(section)) throw new ConfigError('RWS_CONFIG_INVALID', `${path}: profile ${name} must be a mapping`);
    sections.set(name, validateSection(section, path, `profiles.${name}.`, false));
  }
  const profileNames = [...sections.keys()];
  let values = top;
  if (profile !== undefined) {
    const selected = sections.get(profile);
    if (!selected) {
      throw new ConfigError('RWS_CONFIG_INVALID', `profile ${JSON.stringify(profile)} is not defined in ${path}`, profileNames.length ? `defined: ${profileNames.join(', ')}` : 'add a profiles: section');
    }
    values = { ...top, ...selected };
  }
  // Checked on the raw text: a literal API key anywhere (any profile) makes the file a credential.
  if (holdsLiteralCredential(raw) && isExposed(mode)) {
    throw new ConfigError('RWS_CREDENTIAL_FILE_MODE', `${path} holds an API key and is readable by group or others (mode ${modeText(mode)})`, `chmod 600 ${path}, or use credentials: {api_key: \${RWS_API_KEY}}`);
  }
  return { path, values: interpolate(values, env, path), profiles: profileNames };
}

function validateSection(section: Record<string, unknown>, path: string, prefix: string, allowProfiles: boolean): ConfigValues {
  const values: ConfigValues = {};
  for (const key of Object.keys(section)) {
    const value = section[key];
    const where = `${path}: ${prefix}${key}`;
    if (!TOP_KEYS.has(key) || (key === 'profiles' && !allowProfiles)) {
      throw new ConfigError('RWS_CONFIG_INVALID', `unknown setting ${prefix}${key} in ${path}`, `known settings: ${[...TOP_KEYS].join(', ')}`);
    }
    if (key === 'profiles') continue;
    if ((STRING_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== 'string') throw new ConfigError('RWS_CONFIG_INVALID', `${where} must be a string`);
      (values as Record<string, unknown>)[key] = value;
    } else if ((LIST_KEYS as readonly string[]).includes(key)) {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) throw new ConfigError('RWS_CONFIG_INVALID', `${where} must be a list of strings`);
      (values as Record<string, unknown>)[key] = [...list];
    } else if ((NUMBER_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError('RWS_CONFIG_INVALID', `${where} must be a number`);
      (values as Record<string, unknown>)[key] = value;
    } else if (key === 'credentials') {
      if (!isPlainObject(value)) throw new ConfigError('RWS_CONFIG_INVALID', `${where} must be a mapping with api_key`);
      for (const credentialKey of Object.keys(value)) {
        if (credentialKey !== 'api_key') throw new ConfigError('RWS_CONFIG_INVALID', `unknown setting ${prefix}credentials.${credentialKey} in ${path}`, 'credentials holds only api_key');
      }
      if (value.api_key !== undefined && typeof value.api_key !== 'string') throw new ConfigError('RWS_CONFIG_INVALID', `${where}.api_key must be a string`);
      values.credentials = value.api_key === undefined ? {} : { api_key: value.api_key };
    }
  }
  return values;
}

function holdsLiteralCredential(raw: Record<string, unknown>): boolean {
  const sections: unknown[] = [raw, ...(isPlainObject(raw.profiles) ? Object.values(raw.profiles) : [])];
  return sections.some((section) => {
    if (!isPlainObject(section) || !isPlainObject(section.credentials)) return false;
    const key = section.credentials.api_key;
    return typeof key === 'string' && !/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(key.trim());
  });
}

const REFERENCE = /\$\{([^}]*)\}/g;

/** Replaces ${VAR} with the variable's value; an unset or malformed reference is an error. */
function interpolate(values: ConfigValues, env: Readonly<Record<string, string | undefined>>, path: string): ConfigValues {
  const expand = (text: string, key: string): string =>
    text.replace(REFERENCE, (_match, name: string) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError('RWS_CONFIG_INVALID', `${path}: ${key} has a malformed reference \${${name.slice(0, 40)}}`);
      const value = env[name];
      if (value === undefined) throw new ConfigError('RWS_CONFIG_INVALID', `${path}: ${key} refers to \${${name}}, which is not set`, `set ${name} or change ${key}`);
      return value;
    });
  const out: ConfigValues = {};
  for (const key of STRING_KEYS) if (values[key] !== undefined) out[key] = expand(values[key]!, key);
  for (const key of LIST_KEYS) if (values[key] !== undefined) out[key] = values[key]!.map((item) => expand(item, key));
  for (const key of NUMBER_KEYS) if (values[key] !== undefined) out[key] = values[key];
  if (values.credentials) out.credentials = values.credentials.api_key === undefined ? {} : { api_key: expand(values.credentials.api_key, 'credentials.api_key') };
  return out;
}

async function readConfig(path: string): Promise<{ text: string; mode: number | undefined }> {
  try {
    return await readLocalFile(path, { maxBytes: MAX_BYTES, allowPipe: false });
  } catch (error) {
    if (!(error instanceof ReadProblem)) throw error;
    throw new ConfigError(error.kind === 'unreadable' ? 'RWS_CONFIG_UNREADABLE' : 'RWS_CONFIG_INVALID', `cannot read config file ${path}: ${error.reason}`, 'check --config');
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What and where, never the text: yaml's messages quote what they stumbled on, and in this file
 * that may be the API key (`api_key: *rws_sk_...` is "Unresolved alias ...: rws_sk_...", and an
 * unknown tag is quoted the same way).
 */
function describeYamlProblem(error: unknown): string {
  const first = String((error as Error).message ?? '').split('\n')[0] ?? '';
  const what = first.replace(/ at line \d+, column \d+:?$/, '').split(': ')[0];
  const at = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
  return at ? `${what} at line ${at.line}, column ${at.col}` : what!;
}
