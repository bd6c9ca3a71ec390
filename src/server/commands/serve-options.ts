// The operational flags of `serve`, checked before anything starts: the connection cap, the
// metrics listener, the request log format and the headers and request timeouts.
import type { CliIo } from '../cli.js';
import { DEFAULT_MAX_CONNECTIONS } from '../http/limits/connections.js';
import { capAllowedBy, openFileLimit } from '../http/limits/fd-limit.js';
import { parseListenAddress } from '../http/observe/metrics-listener.js';
import type { ListenOptions } from '../http/server.js';
import { ServerUsageError } from '../usage-error.js';

export function operationOptions(args: Record<string, unknown>, io: CliIo): Pick<ListenOptions, 'maxConnections' | 'metricsListen' | 'requestLog' | 'headersTimeoutMs' | 'requestTimeoutMs' | 'maxLongPolls' | 'maxLongPollsPerKey'> {
  const asked = args['max-connections'] as number | undefined;
  if (asked !== undefined && (!Number.isSafeInteger(asked) || asked < 1)) {
    throw new ServerUsageError(`Expected --max-connections to be a positive integer, got ${String(args['max-connections'])}`);
  }
  const limit = openFileLimit();
  const allowed = capAllowedBy(limit);
  let maxConnections = asked ?? DEFAULT_MAX_CONNECTIONS;
  if (allowed !== undefined && maxConnections > allowed) {
    // Past the open-file limit every client is reset (EMFILE): a lower cap evicts idle ones instead.
    if (asked !== undefined) io.stderr.write(`secrets-server: warning RWS_CONNECTIONS_LIMITED: --max-connections ${asked} is above what the open-file limit (${limit}) allows; using ${allowed} (raise ulimit -n)\n`);
    maxConnections = allowed;
  }
  const headersTimeout = (args['headers-timeout'] as number | undefined) ?? 10;
  if (!Number.isSafeInteger(headersTimeout) || headersTimeout < 1 || headersTimeout > 600) {
    throw new ServerUsageError(`Expected --headers-timeout to be an integer from 1 to 600 seconds, got ${String(args['headers-timeout'])}`);
  }
  const requestTimeout = (args['request-timeout'] as number | undefined) ?? 30;
  if (!Number.isSafeInteger(requestTimeout) || requestTimeout < headersTimeout || requestTimeout > 3600) {
    throw new ServerUsageError(`Expected --request-timeout to be an integer from --headers-timeout (${headersTimeout}) to 3600 seconds, got ${String(args['request-timeout'])}`);
  }
  const metricsListen = args['metrics-listen'] === undefined ? undefined : parseListenAddress(String(args['metrics-listen']), '--metrics-listen');
  const requestLog = args['log-format'] === 'json' ? (line: string) => void io.stdout.write(`${line}\n`) : undefined;
  return { maxConnections, metricsListen, requestLog, headersTimeoutMs: headersTimeout * 1000, requestTimeoutMs: requestTimeout * 1000, ...longPollOptions(args, maxConnections) };
}

/** Held requests keep their connections: they must leave some for everyone else. */
function longPollOptions(args: Record<string, unknown>, maxConnections: number): Pick<ListenOptions, 'maxLongPolls' | 'maxLongPollsPerKey'> {
  const total = args['max-long-polls'] as number | undefined;
  if (total !== undefined && (!Number.isSafeInteger(total) || total < 0 || total >= maxConnections)) {
    throw new ServerUsageError(`Expected --max-long-polls to be an integer from 0 to ${maxConnections - 1} (below the connection cap), got ${String(args['max-long-polls'])}`);
  }
  const perKey = args['max-long-polls-per-key'] as number | undefined;
  if (perKey !== undefined && (!Number.isSafeInteger(perKey) || perKey < 0)) {
    throw new ServerUsageError(`Expected --max-long-polls-per-key to be a non-negative integer, got ${String(args['max-long-polls-per-key'])}`);
  }
  return { maxLongPolls: total, maxLongPollsPerKey: perKey };
}
