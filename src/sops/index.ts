// The public API of the native SOPS (YAML + age) reader and writer. FORMAT.md in shared/sops is
// the specification every module here cites.
export { SopsError, type SopsErrorCode } from './errors.js';
export { parseAgeIdentities, loadAgeIdentities, identityToRecipient } from './age-keys.js';
export { openSopsFile, type SopsFile } from './file.js';
export { createSopsFile } from './create.js';
export { DEFAULT_RULE, ruleLeavingUnencrypted } from './rules.js';
