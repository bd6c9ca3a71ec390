// The one grammar for times given by people and clients (flags, query parameters, bodies):
// ISO 8601 dates or date-times with an explicit zone. `new Date()` alone would also take
// "1 Jan 2030" or "2030" in the local zone, which means a different instant on every host.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** The instant `text` names, or undefined when it is not such a time. */
export function parseIsoTime(text: string): Date | undefined {
  if (text.length > 64 || !ISO_TIME.test(text)) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
