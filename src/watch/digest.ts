// What the child received, reduced to keyed digests: one per name, so that a change can be named
// (DB_PASSWORD changed) without keeping or printing any value, and one over the whole set, so
// that "nothing changed" is one comparison. The key is random per process and never leaves it:
// a digest of a low-entropy value in a log or a heap dump of another run reveals nothing.
import { createHmac, randomBytes } from 'node:crypto';

export class SecretsDigester {
  private readonly key = randomBytes(32);

  digest(secrets: ReadonlyMap<string, string>): SecretsDigest {
    const names = new Map<string, string>();
    const whole = createHmac('sha256', this.key);
    for (const name of [...secrets.keys()].sort()) {
      const value = secrets.get(name)!;
      const one = createHmac('sha256', this.key).update(name).update('\0').update(value).digest('base64');
      names.set(name, one);
      // Length-prefixed, so no two different sets serialize alike.
      whole.update(`${name.length}:${name}${one}`);
    }
    return { whole: whole.digest('base64'), names };
  }
}

export interface SecretsDigest {
  whole: string;
  names: ReadonlyMap<string, string>;
}

/** "DB_PASSWORD changed, API_KEY added, OLD removed": names only, sorted, at most `limit` named. */
export function describeChange(before: SecretsDigest, after: SecretsDigest, limit = 5): string {
  const parts: string[] = [];
  for (const [name, digest] of after.names) {
    const old = before.names.get(name);
    if (old === undefined) parts.push(`${name} added`);
    else if (old !== digest) parts.push(`${name} changed`);
  }
  for (const name of before.names.keys()) if (!after.names.has(name)) parts.push(`${name} removed`);
  parts.sort();
  if (parts.length === 0) return 'nothing changed';
  return parts.length > limit ? `${parts.slice(0, limit).join(', ')} and ${parts.length - limit} more` : parts.join(', ');
}
