// The dotenv package's parser. The build bundles dotenv into the wrapper's hot path
// (build/bundle-cli.mjs), so a local run starts neither Node's CommonJS loader nor its
// named-export detection for it (together ≈5 ms of every cron run).
import dotenv from 'dotenv';

export function dotenvParse(text: string): Record<string, string> {
  return dotenv.parse(text);
}
