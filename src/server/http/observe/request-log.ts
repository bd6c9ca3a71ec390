// `--log-format json`: one JSON line per request on stdout, written when the answer is done:
// time, method, route template, status, duration, the API key that authenticated or issued the
// token, and the client address. Never a value, a token, a key, a query or a raw path.

export interface RequestLogEntry {
  time: Date;
  method: string;
  route: string;
  status: number;
  durationMs: number;
  apiKeyId: string | null;
  client: string;
}

export function requestLogLine(entry: RequestLogEntry): string {
  return JSON.stringify({
    time: entry.time.toISOString(),
    method: entry.method,
    route: entry.route,
    status: entry.status,
    duration_ms: Math.round(entry.durationMs * 1000) / 1000,
    api_key_id: entry.apiKeyId,
    client: entry.client,
  });
}
