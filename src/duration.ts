// Durations as people write them for --fallback-max-age (client and server alike): a whole number
// and one unit, `90s`, `30m`, `24h`, `7d`. One unit only: `1h30m` is refused rather than guessed at.

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };
const GRAMMAR = /^([0-9]{1,7})([smhd])$/;

/** Seconds, zero included, or undefined when `text` is not written as a duration at all. */
export function readDuration(text: string): number | undefined {
  const match = GRAMMAR.exec(text);
  return match ? Number(match[1]) * UNITS[match[2]!]! : undefined;
}

/** `2h 5m`, `3d 4h`, `45s`: the two largest units, for warnings about age and time left. */
export function formatDuration(seconds: number): string {
  let rest = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const amount = Math.floor(rest / size);
    rest -= amount * size;
    if (amount > 0 || parts.length > 0) parts.push(`${amount}${unit}`);
  }
  const shown = parts.slice(0, 2).filter((part, index) => index === 0 || !part.startsWith('0'));
  return shown.length === 0 ? '0s' : shown.join(' ');
}
