// A SecretSource that reports each environment's load outcome (for the SOPS files' metric)
// without changing what it answers.
import type { SecretSource } from './secret-source.js';

export function observeLoads(source: SecretSource, report: (environment: string, state: 'loaded' | 'failed' | 'absent') => void): SecretSource {
  return {
    // One reaction on the source's promise rather than an async function around it (every read opens).
    open(environment) {
      return source.open(environment).then(
        (file) => {
          report(environment, file === undefined ? 'absent' : 'loaded');
          return file;
        },
        (error: unknown) => {
          report(environment, 'failed');
          throw error;
        },
      );
    },
    versions: () => source.versions(),
    ...(source.watch === undefined ? {} : { watch: source.watch.bind(source) }),
  };
}
