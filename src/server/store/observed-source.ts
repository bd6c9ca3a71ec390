// A SecretSource that reports each environment's load outcome (for the SOPS files' metric)
// without changing what it answers.
import type { SecretSource } from './secret-source.js';

export function observeLoads(source: SecretSource, report: (environment: string, state: 'loaded' | 'failed' | 'absent') => void): SecretSource {
  return {
    async open(environment) {
      try {
        const file = await source.open(environment);
        report(environment, file === undefined ? 'absent' : 'loaded');
        return file;
      } catch (error) {
        report(environment, 'failed');
        throw error;
      }
    },
    versions: () => source.versions(),
    ...(source.watch === undefined ? {} : { watch: source.watch.bind(source) }),
  };
}
