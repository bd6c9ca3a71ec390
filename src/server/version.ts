// The package's version (--version, and the console's status page).
import { readFileSync } from 'node:fs';

/** From the package.json two levels above dist/server/. */
export function packageVersion(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    return String((JSON.parse(text) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
