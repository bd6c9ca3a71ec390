import { describe, expect, it } from 'vitest';
import { otherOwnerHint } from '../../../src/config/private-file.js';

describe('otherOwnerHint', () => {
  it("tells root in a user's HOME (sudo kept it) to leave the file alone, and a user to remove what such a sudo left there", () => {
    expect(otherOwnerHint(1000, 'XDG_CONFIG_HOME', 'remove it (run-with-secrets logout --all)', 'log in again')).toBe(
      "it is uid 1000's: run as that user, or point HOME (sudo -H) or XDG_CONFIG_HOME at your own; do not remove it",
    );
    expect(otherOwnerHint(0, 'XDG_STATE_HOME', 'remove it (run-with-secrets fallback clean)', 'let a --fallback run write it again')).toBe(
      'root made it (sudo without -H keeps your HOME): remove it (run-with-secrets fallback clean) as root, then let a --fallback run write it again',
    );
  });
});
