// Which top-level values a verified file leaves unprotected: hand-edited files that still verify.
import { generateX25519Identity } from 'age-encryption';
import { beforeAll, describe, expect, test } from 'vitest';
import { createSopsFile, identityToRecipient, openSopsFile, ruleLeavingUnencrypted, DEFAULT_RULE } from '../../../src/sops/index.js';

let identity: string;
let base: string;
beforeAll(async () => {
  identity = await generateX25519Identity();
  base = await createSopsFile({ A: 'alpha', NOTE_unencrypted: 'plain' }, [await identityToRecipient(identity)]);
});

const inject = (text: string, lines: string): string => text.replace(/^sops:/m, `${lines}\nsops:`);

describe('unprotected values', () => {
  test('empty values added by hand in every spelling still verify, and are all unprotected; null and nested are skipped instead', async () => {
    const text = inject(base, `E1: ""\nE2: ''\nE3: !!str\nNULLED:\nNESTED:\n    x: ""`);
    const f = await openSopsFile(text, [identity]);
    expect(f.names).toEqual(['A', 'NOTE_unencrypted', 'E1', 'E2', 'E3']);
    expect(f.unprotected).toEqual(['NOTE_unencrypted', 'E1', 'E2', 'E3']);
    expect(f.skipped).toEqual(['NULLED', 'NESTED']);
  });

  test('a plaintext value cannot be added without changing the MAC, unless mac_only_encrypted is set', async () => {
    await expect(openSopsFile(inject(base, 'ADDED_unencrypted: evil'), [identity])).rejects.toMatchObject({ code: 'RWS_SOPS_MAC_MISMATCH' });
    // Renaming a plaintext value keeps the MAC (names are not covered): still unprotected.
    const renamed = await openSopsFile(base.replace('NOTE_unencrypted:', 'OTHER_unencrypted:'), [identity]);
    expect(renamed.unprotected).toEqual(['OTHER_unencrypted']);
  });

  test('names the rule that leaves a name unencrypted', async () => {
    const f = await openSopsFile(base, [identity]);
    expect(f.ruleLeavingUnencrypted('X_unencrypted')).toBe('unencrypted_suffix: _unencrypted');
    expect(f.ruleLeavingUnencrypted('X')).toBeUndefined();
    expect(ruleLeavingUnencrypted(DEFAULT_RULE, 'Y_unencrypted')).toBe('unencrypted_suffix: _unencrypted');
    expect(ruleLeavingUnencrypted({ kind: 'encrypted_regex', regex: /^DB_/u, source: '^DB_' }, 'API')).toBe('encrypted_regex: ^DB_');
    expect(ruleLeavingUnencrypted({ kind: 'encrypted_suffix', suffix: '_secret' }, 'API_secret')).toBeUndefined();
  });
});
