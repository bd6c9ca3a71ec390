// The one grammar for times given by people and clients (flags, query parameters, bodies):
// ISO 8601 dates or date-times with an explicit zone. `new Date()` alone would also take
// "1 Jan 2030" or "2030" in the local zone, which means a different instant on every host, and
// it rolls an impossible date over: 2026-02-30 would be 2 March, so every field is range-checked
// (against the month's length, leap years included) before it is read.
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-](\d{2}):(\d{2})))?$/;

/** The instant `text` names, or undefined when it is not such a time or names no real one. */
export function parseIsoTime(text: string): Date | undefined {
  const match = text.length > 64 ? null : ISO_TIME.exec(text);
  if (match === null) return undefined;
  const [year, month, day, hour = 0, minute = 0, second = 0, , zoneHour = 0, zoneMinute = 0] = match.slice(1).map((part) => (part === undefined || part === 'Z' ? undefined : Number(part)));
  if (month === undefined || month < 1 || month > 12 || day === undefined || day < 1 || day > daysIn(year as number, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59 || zoneHour > 23 || zoneMinute > 59) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}
