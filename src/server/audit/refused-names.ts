// A refused request's row names what was asked for, but no more than the first 50 names. A batch
// may ask for 1,000, and its refusal (403 outside the token's scope, 404) costs no use and is not
// rate limited: the holder of any valid token could leave a 62 KB row per request, as often as it
// liked. Past 50, one last entry counts the names left out (`+950 more`); no secret name can look
// like it (a name starts with a letter or _), and it sits in `keys`, which the hash chain already
// covers, so neither the schema nor the hash of any row changes. A served request's row still
// names everything served.

export const MAX_REFUSED_NAMES = 50;

export function boundRefusedNames(keys: readonly string[] | null): readonly string[] | null {
  if (keys === null || keys.length <= MAX_REFUSED_NAMES) return keys;
  return [...keys.slice(0, MAX_REFUSED_NAMES), `+${keys.length - MAX_REFUSED_NAMES} more`];
}
