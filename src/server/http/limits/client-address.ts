// Which "client" a failure is charged to. An IPv6 user is normally handed a whole /64, so one
// address per guess would give an attacker 2^64 fresh limits: IPv6 is counted per /64 prefix,
// IPv4 (and IPv4-mapped IPv6, as a dual-stack listener reports it) per address.
import { isIPv4, isIPv6 } from 'node:net';

export function limitKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined && isIPv4(mapped[1])) return mapped[1];
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  return prefixOf(expandIPv6(address.replace(/%.*$/, '')), 64);
}

/**
 * The wider prefix (`bits` 0, 16, … 64) holding an IPv6 /64 key (`limitKey`'s), or undefined for
 * a key that is no IPv6 /64 (an IPv4 address).
 */
export function widerPrefix(key: string, bits: number): string | undefined {
  if (!key.endsWith('::/64')) return undefined;
  return prefixOf(expandIPv6(key.slice(0, -'/64'.length)), bits);
}

/**
 * The prefix in RFC 5952's form (`2001:db8::/64`, `::/64`): the key is also what a folded 429
 * audit row names as its client, where it should read as people and other tools write it. With
 * `bits` at most 64 the last four groups are zero, so the longest run of zeros always ends it.
 */
function prefixOf(groups: readonly string[], bits: number): string {
  const head = groups.slice(0, bits / 16);
  while (head.length > 0 && head[head.length - 1] === '0') head.pop();
  return `${head.join(':')}::/${bits}`;
}

/** The eight 16-bit groups of an IPv6 address, lower-case hex without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // A trailing dotted quad (::1.2.3.4) is two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad !== null) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((group) => Number.parseInt(group, 16).toString(16));
}
