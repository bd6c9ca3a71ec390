import { describe, expect, it } from 'vitest';
import { routeLabel } from '../../../src/server/http/observe/route-label.js';
import { ServerMetrics } from '../../../src/server/http/observe/metrics.js';
import { parseListenAddress } from '../../../src/server/http/observe/metrics-listener.js';

describe('routeLabel', () => {
  it('maps every request target to a fixed template, never to anything the client wrote', () => {
    expect(routeLabel('/api/v1/vault/production/DB_PASSWORD?x=1')).toBe('/api/v1/vault/{environment}/{key}');
    expect(routeLabel('/api/v1/vault/production?pattern=DB_*')).toBe('/api/v1/vault/{environment}');
    expect(routeLabel('/api/v1/vault/tokens/generate')).toBe('/api/v1/vault/tokens/generate');
    expect(routeLabel('/healthz?')).toBe('/healthz');
    // The admin API's token routes, which the server never reads as an environment.
    expect(routeLabel('/api/v1/vault/tokens?active=true')).toBe('/api/v1/vault/tokens');
    expect(routeLabel('/api/v1/vault/tokens/Yc3vS5QJmsirG9ukcPkKLcXg')).toBe('/api/v1/vault/tokens/{jti}');
    expect(routeLabel('/api/v1/vault/tokens/revoke')).toBe('/api/v1/vault/tokens/revoke');
    const hostile = ['', '/', '//', '/api/v1/vault/', '/api/v1/vault/a/b/c', '/api/v1/vault/"}\n# HELP x', '/%00', '*', 'http://evil/x', '/api/v1/vault//', undefined];
    for (const target of hostile) expect(['other', '/api/v1/vault/{environment}', '/api/v1/vault/{environment}/{key}']).toContain(routeLabel(target as string));
    expect(routeLabel('/api/v1/vault/"}\n# HELP x')).toBe('/api/v1/vault/{environment}');
  });

  it('labels every target as splitting the path into segments would', () => {
    // The rule written the plain way: the label function finds segments by position instead.
    const bySegments = (target: string | undefined): string => {
      const path = (target ?? '/').split('?', 1)[0] ?? '/';
      if (path === '/healthz' || path === '/metrics') return path;
      if (!path.startsWith('/api/v1/vault/')) return 'other';
      const parts = path.slice('/api/v1/vault/'.length).split('/');
      if (parts.length === 2 && parts[0] === 'tokens' && (parts[1] === 'generate' || parts[1] === 'revoke')) return `/api/v1/vault/tokens/${parts[1]}`;
      if (parts.length === 2 && parts[0] === 'tokens' && parts[1]) return '/api/v1/vault/tokens/{jti}';
      if (parts.length === 1 && parts[0] === 'tokens') return '/api/v1/vault/tokens';
      if (parts.length === 2 && parts[0] === 'secrets' && parts[1] === 'batch') return '/api/v1/vault/secrets/batch';
      if (parts.length === 2 && parts[0] && parts[1]) return '/api/v1/vault/{environment}/{key}';
      if (parts.length === 1 && parts[0]) return '/api/v1/vault/{environment}';
      return 'other';
    };
    const pieces = ['', '/', '//', '?', '?a=/b', 'tokens', 'generate', 'revoke', 'secrets', 'batch', 'prod', 'KEY', '%2F', '..', ' ', '\n'];
    const targets: Array<string | undefined> = [undefined, '', '/healthz', '/metrics', '/metrics/', '/api/v1/vault', 'api/v1/vault/x'];
    for (const a of pieces) for (const b of pieces) for (const c of pieces) targets.push(`/api/v1/vault/${a}${b}${c}`, `/api/v1/vault/${a}/${b}${c}`, `/api/v1/vault/${a}/${b}/${c}`);
    for (const target of targets) expect([target, routeLabel(target)]).toEqual([target, bySegments(target)]);
  });
});

describe('ServerMetrics', () => {
  it('renders counters from outcomes, with no environment or secret name even when the observed file is named', () => {
    const metrics = new ServerMetrics();
    metrics.observeRequest('/api/v1/vault/{environment}/{key}', 200, 0.0007);
    metrics.observeOutcome({ event: 'secret.read', status: 200, body: {}, seen: { api_key_id: 'ak_secret_id', subject: 'who', keys: ['DB_PASSWORD'] } });
    metrics.observeOutcome({ event: 'secret.read', status: 503, body: { error: { code: 'RWS_STATE_UNAVAILABLE' } }, seen: {} });
    metrics.observeSopsFile('production-secret-env', 'failed');
    const text = metrics.render();
    expect(text).toContain('rws_http_request_duration_seconds_bucket{route="/api/v1/vault/{environment}/{key}",le="0.001"} 1');
    expect(text).toContain('rws_http_request_duration_seconds_bucket{route="/api/v1/vault/{environment}/{key}",le="0.0005"} 0');
    expect(text).toContain('\nrws_token_uses_total 1\n');
    expect(text).toContain('\nrws_state_write_failures_total 1\n');
    expect(text).toContain('rws_sops_files{state="failed"} 1');
    for (const word of ['ak_secret_id', 'who', 'DB_PASSWORD', 'production-secret-env']) expect(text).not.toContain(word);
    metrics.observeSopsFile('production-secret-env', 'absent');
    expect(metrics.render()).toContain('rws_sops_files{state="failed"} 0');
  });
});

describe('parseListenAddress', () => {
  it('takes HOST:PORT and [IPv6]:PORT, and refuses anything else', () => {
    expect(parseListenAddress('127.0.0.1:9464', '--metrics-listen')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:0', '--metrics-listen')).toEqual({ host: '::1', port: 0 });
    expect(parseListenAddress('localhost:9464', '--metrics-listen')).toEqual({ host: 'localhost', port: 9464 });
    for (const bad of ['', ':9464', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '::1:9464', '[::1]', '[x]:1', 'a b:1', '127.0.0.1:1x', `${'a'.repeat(10_000)}:1:1`]) {
      expect(() => parseListenAddress(bad, '--metrics-listen')).toThrow(/Expected --metrics-listen to be HOST:PORT/);
    }
  });
});

describe('openFileLimit', () => {
  it('reads the soft limit of /proc/self/limits, and nothing from anything else', async () => {
    const { openFileLimit, capAllowedBy } = await import('../../../src/server/http/limits/fd-limit.js');
    const row = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                20000                files\n`;
    expect(openFileLimit(row('1024'))).toBe(1024);
    expect(openFileLimit(row('unlimited'))).toBeUndefined();
    for (const hostile of ['', 'Max open files', 'Max open files -1 2 files', 'max open files 10 10 files', `Max open files ${'9'.repeat(5000)}x`]) expect(openFileLimit(hostile)).toBeUndefined();
    expect(capAllowedBy(1024)).toBe(960);
    expect(capAllowedBy(10)).toBe(1);
    expect(capAllowedBy(undefined)).toBeUndefined();
    expect(typeof (openFileLimit() ?? 0)).toBe('number');
  });
});
