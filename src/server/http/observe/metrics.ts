// Counters for GET /metrics in the Prometheus text format (version 0.0.4). Everything is counted
// from what the app answered (route template, status, error code, audit event), never from
// inside the state store, and no label ever holds a secret name, an environment, a key id or a
// subject: route templates, statuses and fixed words only.
import { errorCodeOf, type ExchangeOutcome } from './exchange-observer.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type SopsFileState = 'loaded' | 'failed';

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export interface ConnectionCounts {
  readonly open: number;
  readonly refused: number;
  readonly evicted: number;
}

export class ServerMetrics {
  readonly #requests = new Map<string, Map<number, number>>();
  readonly #latency = new Map<string, Histogram>();
  readonly #events = { mints: 0, uses: 0, revocations: 0, unauthorized: 0, rateLimited: 0, auditFailures: 0, stateFailures: 0 };
  readonly #sopsFiles = new Map<string, SopsFileState>();
  connections: ConnectionCounts = { open: 0, refused: 0, evicted: 0 };
  longPolls: { readonly held: number } = { held: 0 };

  /** One answered request: its route template, status and duration. */
  observeRequest(route: string, status: number, seconds: number): void {
    // By route, then status: the labels are the route-label constants, never a string made per request.
    let statuses = this.#requests.get(route);
    if (statuses === undefined) this.#requests.set(route, (statuses = new Map()));
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    let histogram = this.#latency.get(route);
    if (histogram === undefined) {
      histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(route, histogram);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] as number)) (histogram.counts[i] as number)++;
    histogram.sum += seconds;
    histogram.count++;
  }

  /** What the answer meant: a mint, a use, a revocation, a refusal, a failed write. */
  observeOutcome(outcome: ExchangeOutcome): void {
    const { event, status } = outcome;
    const code = errorCodeOf(outcome.body);
    if (event === 'token.generate' && status === 201) this.#events.mints++;
    // A batch's 304 is charged like its 200 (the client learnt the values are unchanged).
    if ((event === 'secret.read' || event === 'secret.list' || event === 'secret.batch') && (status === 200 || (event === 'secret.batch' && status === 304))) this.#events.uses++;
    if (event === 'token.revoke' && status === 204) this.#events.revocations++;
    if (status === 401) this.#events.unauthorized++;
    if (status === 429) this.#events.rateLimited++;
    if (code === 'RWS_AUDIT_UNAVAILABLE') this.#events.auditFailures++;
    if (code === 'RWS_STATE_UNAVAILABLE') this.#events.stateFailures++;
  }

  /** The last load of one environment's file. Kept by name here, exported only as counts. */
  observeSopsFile(environment: string, state: SopsFileState | 'absent'): void {
    if (state === 'absent') this.#sopsFiles.delete(environment);
    else this.#sopsFiles.set(environment, state);
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string): void => void out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family('rws_http_requests_total', 'counter', 'Requests answered, by route template and status.');
    for (const [route, statuses] of this.#requests) {
      for (const [status, count] of statuses) out.push(`rws_http_requests_total{route="${route}",status="${status}"} ${count}`);
    }
    family('rws_http_request_duration_seconds', 'histogram', 'Time from the request to the end of the answer, by route template.');
    for (const [route, h] of this.#latency) {
      BUCKETS.forEach((le, i) => out.push(`rws_http_request_duration_seconds_bucket{route="${route}",le="${le}"} ${h.counts[i]}`));
      out.push(`rws_http_request_duration_seconds_bucket{route="${route}",le="+Inf"} ${h.count}`);
      out.push(`rws_http_request_duration_seconds_sum{route="${route}"} ${h.sum}`, `rws_http_request_duration_seconds_count{route="${route}"} ${h.count}`);
    }
    const counter = (name: string, help: string, value: number): void => {
      family(name, 'counter', help);
      out.push(`${name} ${value}`);
    };
    const e = this.#events;
    counter('rws_tokens_minted_total', 'Tokens issued (201 from tokens/generate).', e.mints);
    counter('rws_token_uses_total', 'Successful reads, lists and batches (each one use of its token).', e.uses);
    counter('rws_token_revocations_total', 'Tokens revoked (204 from tokens/revoke).', e.revocations);
    counter('rws_auth_failures_total', 'Answers 401: missing, invalid, expired, revoked or spent credentials.', e.unauthorized);
    counter('rws_rate_limited_total', 'Answers 429: failed-authentication limits.', e.rateLimited);
    counter('rws_audit_write_failures_total', 'Answers 503 because the audit record could not be written.', e.auditFailures);
    counter('rws_state_write_failures_total', 'Answers 503 because the token state could not be written.', e.stateFailures);
    family('rws_open_connections', 'gauge', 'Client connections open now.');
    out.push(`rws_open_connections ${this.connections.open}`);
    counter('rws_connections_refused_total', 'Connections refused at the cap because every connection was busy.', this.connections.refused);
    counter('rws_connections_evicted_total', 'Idle connections closed to make room for a new one at the cap.', this.connections.evicted);
    family('rws_long_polls_held', 'gauge', 'Batch requests held by ?wait= now.');
    out.push(`rws_long_polls_held ${this.longPolls.held}`);
    family('rws_sops_files', 'gauge', 'Environment files by the outcome of their last load (loaded, or failed verification).');
    const states = { loaded: 0, failed: 0 };
    for (const state of this.#sopsFiles.values()) states[state]++;
    out.push(`rws_sops_files{state="loaded"} ${states.loaded}`, `rws_sops_files{state="failed"} ${states.failed}`);
    return `${out.join('\n')}\n`;
  }
}
