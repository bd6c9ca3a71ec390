// What the watch loop takes from the plain run's modules, handed over by runWrapper rather than
// imported: the bundler would otherwise split those modules out of the hot path's single file
// into a chunk of their own, and every plain run would load one more module.
import type { buildChildEnv } from '../inject/child-env.js';
import type { SecretsFile } from '../inject/secrets-file.js';
import type { Cleanup, Stopped, StopSwitch } from '../process/cleanup.js';
import type { startChild } from '../process/spawn.js';
import type { maskFilters, preparePlacement } from '../run.js';
import type { selectSecrets } from '../select.js';

export interface WatchKit {
  buildChildEnv: typeof buildChildEnv;
  Cleanup: typeof Cleanup;
  maskFilters: typeof maskFilters;
  preparePlacement: typeof preparePlacement;
  SecretsFile: typeof SecretsFile;
  selectSecrets: typeof selectSecrets;
  startChild: typeof startChild;
  Stopped: typeof Stopped;
  StopSwitch: typeof StopSwitch;
}
