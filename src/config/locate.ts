// Where the config file is, if anywhere. Kept apart from the YAML reader so that runs without a
// config file never load it.
import { statSync } from 'node:fs';
import { join } from 'node:path';

export interface FindOptions {
  explicit: string | undefined;
  cwd: string;
  home: string | undefined;
  xdgConfigHome: string | undefined;
}

/** The config file to read, or undefined when there is none (only --config must exist). */
export async function findConfigFile(options: FindOptions): Promise<string | undefined> {
  if (options.explicit !== undefined) return options.explicit;
  const candidates = [join(options.cwd, '.run-with-secrets.yaml')];
  const configHome = options.xdgConfigHome || (options.home ? join(options.home, '.config') : undefined);
  if (configHome) candidates.push(join(configHome, 'run-with-secrets', 'config.yaml'));
  for (const candidate of candidates) {
    try {
      // Synchronous: node:fs/promises would cost every run ≈2 ms to load (bench/startup).
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not there: try the next place
    }
  }
  return undefined;
}
