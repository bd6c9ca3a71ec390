// The console's security in a real headless Chromium: what another site can make the browser do
// (a form POST, a fetch with credentials), the cookie's flags, the page's policy (no violation,
// and inline script refused), hostile names rendered as text, read keys and ended sessions.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tamper } from '../server/state/conformance.js';
import { storePaths } from '../../src/server/store/layout.js';
import { makeTestCa } from '../vault-client/helpers/test-ca.js';
import { call, cliOk, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../server/helpers/server.js';
import { launchBrowser, nav, openPage, signIn } from './helpers/browser.js';

const XSS = ['<img src=x onerror=window.__pwned=1>', '"><script>window.__pwned=2</script>'];
const ADMIN_ROUTES: Array<[string, string, unknown?]> = [
  ['POST', '/api/v1/auth/keys', { name: 'x', environments: ['production'], key_patterns: ['*'] }],
  ['GET', '/api/v1/auth/keys'],
  ['GET', '/api/v1/auth/keys/ak_0000000000000000'],
  ['DELETE', '/api/v1/auth/keys/ak_0000000000000000'],
  ['GET', '/api/v1/vault/tokens?active=true'],
  ['DELETE', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAAAAAAAA'],
  ['GET', '/api/v1/audit'],
  ['GET', '/api/v1/audit/chart?window=hour'],
  ['GET', '/api/v1/admin/status'],
  ['GET', '/api/v1/admin/environments'],
  ['GET', '/api/v1/admin/environments/production/secrets'],
  ['PUT', '/api/v1/admin/environments/production/secrets/DB_URL', { value: 'stolen' }],
  ['DELETE', '/api/v1/admin/environments/production/secrets/DB_URL'],
];

let browser: Browser;
let store: TestStore;
let server: RunningServer;
let admin: string;
let reader: { id: string; key: string };
let attacker: Server;
let attackerUrl: string;

beforeAll(async () => {
  store = await makeStore({ production: { DB_URL: 'security-db-url-value' } });
  admin = /^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'ops', '--admin']))?.[1] as string;
  reader = await makeApiKey(store, ['production'], ['*']);
  server = await startServer(store, ['--console']);
  browser = await launchBrowser();
  // Another site (127.0.0.2 is another origin and another site than 127.0.0.1): its pages try
  // to act with the signed-in admin's browser.
  attacker = createServer((req, res) => {
    const target = server.url;
    const pages: Record<string, string> = {
      '/form': `<form id=f method=POST action="${target}/api/v1/auth/keys" enctype="text/plain"><input name='{"name":"csrf","environments":["production"],"key_patterns":["*"],"x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
      '/signout': `<form id=f method=POST action="${target}/console/api/session"></form><script>document.getElementById('f').submit()</script>`,
      '/fetch': `<script>
        window.results = {};
        const body = JSON.stringify({ name: 'cors', environments: ['production'], key_patterns: ['*'] });
        Promise.allSettled([
          fetch('${target}/api/v1/auth/keys', { credentials: 'include' }).then((r) => r.text()),
          fetch('${target}/api/v1/auth/keys', { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body }).then((r) => r.status),
          fetch('${target}/api/v1/auth/keys', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body }).then((r) => r.type),
        ]).then((all) => { window.results = all.map((r) => r.status + ':' + (r.value ?? '')); document.title = 'done'; });
      </script>`,
    };
    const page = pages[req.url ?? ''];
    res.writeHead(page ? 200 : 404, { 'content-type': 'text/html' }).end(page ?? '');
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.2', resolve));
  attackerUrl = `http://127.0.0.2:${(attacker.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  attacker?.close();
  expect(await server?.stop()).toBe(0);
  await store?.cleanup();
});

const keyNames = async (): Promise<string[]> => (await call(`${server.url}/api/v1/auth/keys`, { auth: admin })).body.keys.map((k: { name: string }) => k.name);

describe('the console in Chromium', { timeout: 60_000 }, () => {
  it('refuses a cross-site form POST and a cross-origin fetch made with the admin\'s signed-in browser', async () => {
    const { page, context } = await openPage(browser);
    await signIn(page, server.url, admin);
    const before = await keyNames();
    const started = new Date().toISOString();
    const evil = await context.newPage();
    await evil.goto(`${attackerUrl}/form`);
    await evil.waitForURL(`${server.url}/api/v1/auth/keys`);
    // Without the cookie (SameSite) it shows no credential: 401, before its body is looked at.
    expect(await evil.content()).toMatch(/RWS_AUTH_FAILED/);
    await evil.goto(`${attackerUrl}/fetch`);
    await evil.waitForFunction(() => document.title === 'done');
    const results = (await evil.evaluate(() => (window as unknown as { results: string[] }).results)) as string[];
    // Reading is refused by CORS, the credentialed POST too (preflight), the no-cors POST is sent blind.
    expect(results[0]).toMatch(/^rejected/);
    expect(results[1]).toMatch(/^rejected/);
    expect(results[2]).toBe('fulfilled:opaque');
    await evil.goto(`${attackerUrl}/signout`);
    await evil.waitForURL(`${server.url}/console/api/session`);
    expect(await keyNames()).toEqual(before);
    // The session survived every attempt.
    await nav(page, 'Status').click();
    await page.getByText('Schema version').waitFor();
    // Every attempt reached the server without the session (SameSite=Strict): no row names the admin key.
    const rows = (await call(`${server.url}/api/v1/audit?outcome=failure&since=${encodeURIComponent(started)}&limit=100`, { auth: admin })).body.events;
    expect(rows.map((row: { event: string; status: number }) => `${row.event} ${row.status}`).sort()).toEqual(['auth.failure 401', 'auth.failure 401', 'auth.failure 401', 'console.signin 403']);
    expect(rows.every((row: { api_key_id: string | null }) => row.api_key_id === null)).toBe(true);
    await context.close();
  });

  it('refuses requests another origin of the same site makes with the session: no row in the admin\'s name, no activity', async () => {
    // Another port of the same host is the same site (so are sibling subdomains): SameSite=Strict
    // lets the browser send the cookie with its images and fetches. It cannot read the answers,
    // but each would be an audit row in the admin's name (with a subject of its choosing) and
    // would keep an unattended session open.
    const neighbour = createServer((req, res) => {
      const page = `<img src="${server.url}/api/v1/audit?environment=planted-by-img"><script>
        Promise.allSettled([
          fetch('${server.url}/api/v1/audit?environment=planted-by-fetch', { mode: 'no-cors', credentials: 'include' }),
          fetch('${server.url}/console/api/session', { mode: 'no-cors', credentials: 'include' }),
        ]).then(() => { document.title = 'done'; });
      </script>`;
      res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html' }).end(req.url === '/' ? page : '');
    });
    await new Promise<void>((resolve) => neighbour.listen(0, '127.0.0.1', resolve));
    const { page, context } = await openPage(browser);
    try {
      await signIn(page, server.url, admin);
      // Rows of the session's own (a refusal before the session is looked up names no key).
      const sessionRows = async () => (await call(`${server.url}/api/v1/audit?event=console.session&limit=1000`, { auth: admin })).body.events.filter((row: { api_key_id: string | null }) => row.api_key_id !== null).length;
      const before = await sessionRows();
      const started = new Date().toISOString();
      const evil = await context.newPage();
      const requests: string[] = [];
      evil.on('request', (request) => request.url().startsWith(server.url) && requests.push(request.headers().cookie ?? ''));
      await evil.goto(`http://127.0.0.1:${(neighbour.address() as AddressInfo).port}/`);
      await evil.waitForFunction(() => document.title === 'done');
      await evil.waitForLoadState('networkidle');
      const rows = (await call(`${server.url}/api/v1/audit?since=${encodeURIComponent(started)}&limit=100`, { auth: admin })).body.events;
      const planted = rows.filter((row: { subject: string | null }) => /planted/.test(row.subject ?? ''));
      // The browser did send the session's cookie (the premise), and nothing was done in its name.
      expect(requests.length).toBe(3);
      expect(planted).toEqual([]);
      expect(rows.filter((row: { api_key_id: string | null; event: string }) => row.api_key_id !== null && row.event !== 'audit.read')).toEqual([]);
      expect(await sessionRows()).toBe(before);
      // The console's own page still works with the same session.
      await nav(page, 'Status').click();
      await page.getByText('Schema version').waitFor();
    } finally {
      await context.close();
      neighbour.close();
    }
  });

  it('keeps the session in an HttpOnly, SameSite=Strict cookie the page cannot read; Secure under TLS', async () => {
    const { page, context } = await openPage(browser);
    await signIn(page, server.url, admin);
    const cookies = await context.cookies(server.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'rws_session', httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    expect(await page.evaluate(() => document.cookie)).toBe('');
    await context.close();

    const dir = await mkdtemp(path.join(tmpdir(), 'rws-console-tls-'));
    const ca = await makeTestCa(dir);
    const tls = await startServer(store, ['--console', '--tls-cert', ca.serverCert, '--tls-key', ca.serverKey]);
    const secure = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const tlsPage = await secure.newPage();
      await signIn(tlsPage, tls.url, admin);
      expect(await secure.cookies(tls.url)).toEqual([expect.objectContaining({ name: '__Host-rws_session', httpOnly: true, sameSite: 'Strict', secure: true, path: '/' })]);
    } finally {
      await secure.close();
      expect(await tls.stop()).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('raises no policy violation on any page, labels every control, and the policy refuses inline script', async () => {
    const { page, context, problems } = await openPage(browser, { width: 375 });
    // Keyboard alone: the key field has the focus on arrival, Enter signs in.
    await page.goto(`${server.url}/console/`);
    await page.getByLabel('Admin API key').waitFor();
    await page.waitForFunction(() => document.activeElement?.id === 'admin-key', undefined, { timeout: 5_000 });
    await page.keyboard.type(admin);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'API keys' }).waitFor();
    for (const [link, check] of [['Tokens', 'Include ended tokens'], ['Audit', 'Live: follow new events'], ['Secrets', 'Set or replace a secret'], ['Status', 'Schema version'], ['API keys', 'Create a key']]) {
      await nav(page, link as string).click();
      await page.getByText(check as string).first().waitFor();
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, button, textarea')]
          .filter((element) => {
            const control = element as HTMLInputElement;
            const named = (control.labels?.length ?? 0) > 0 || control.getAttribute('aria-label') || (element.tagName === 'BUTTON' && element.textContent?.trim());
            return !named;
          })
          .map((element) => element.outerHTML),
      );
      expect(unlabelled, link as string).toEqual([]);
    }
    // Nothing is wider than the 375 px screen but the tables' own scrolling boxes.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    expect(problems).toEqual([]);
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__inline = 1';
      document.body.append(script);
      return (window as unknown as { __inline?: number }).__inline;
    });
    expect(ran).toBeUndefined();
    await page.waitForTimeout(100);
    expect(problems.some((problem) => problem.startsWith('csp: script-src'))).toBe(true);
    await context.close();
  });

  it('renders hostile key names, subjects and audit fields as text', async () => {
    for (const name of XSS) {
      const made = await call(`${server.url}/api/v1/auth/keys`, { auth: admin, json: { name, environments: ['production'], key_patterns: ['*'] } });
      expect(made.status).toBe(201);
      await token(server, made.body.key, { subject: name, environment: 'production', key_pattern: 'DB_URL' });
      // A filter the audit route takes is recorded as the row's subject: a third field.
      await call(`${server.url}/api/v1/audit?environment=x${encodeURIComponent('"><b>')}`, { auth: admin });
    }
    const { page, context, problems } = await openPage(browser);
    await signIn(page, server.url, admin);
    for (const [link, where] of [['API keys', 'API keys, newest first'], ['Tokens', 'Live tokens, newest first'], ['Audit', 'Events, newest first']]) {
      await nav(page, link as string).click();
      const region = page.getByRole('region', { name: where as string });
      for (const payload of XSS) await region.getByText(payload).first().waitFor();
      expect(await page.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned, images: document.querySelectorAll('img').length, scripts: document.querySelectorAll('script').length, bold: document.querySelectorAll('b').length }))).toEqual({ pwned: undefined, images: 0, scripts: 1, bold: 0 });
    }
    expect(problems).toEqual([]);
    await context.close();
  });

  it('shows bidi overrides and invisible characters in key names and subjects as \\uXXXX, never acting on them', async () => {
    // Read as "ci (revoked)" when the override acts; the same as "root" when the zero-width space hides.
    const spoofs = [{ name: 'ci \u202e)dekover(', environments: ['production'], key_patterns: ['*'] }, { name: 'root\u200b', admin: true }];
    for (const body of spoofs) expect((await call(`${server.url}/api/v1/auth/keys`, { auth: admin, json: body })).status).toBe(201);
    // A read key chooses its tokens' subjects, and the subject of an offline use, which the
    // server follows with its own " (offline at …)".
    await token(server, reader.key, { subject: 'deploy\u202e\u2066bot', environment: 'production', key_pattern: 'DB_URL' });
    const used = await call(`${server.url}/api/v1/fallback/uses`, { method: 'POST', auth: reader.key, json: { subject: 'ci\u202e', environment: 'production', keys: ['DB_URL'], used_at: new Date().toISOString() } });
    expect(used.status).toBe(204);
    const { page, context, problems } = await openPage(browser);
    await signIn(page, server.url, admin);
    for (const [link, where, shown] of [
      ['API keys', 'API keys, newest first', ['ci \\u202e)dekover(', 'root\\u200b']],
      ['Tokens', 'Live tokens, newest first', ['deploy\\u202e\\u2066bot']],
      ['Audit', 'Events, newest first', ['deploy\\u202e\\u2066bot', 'ci\\u202e (offline at ']],
    ] as const) {
      await nav(page, link).click();
      const region = page.getByRole('region', { name: where });
      for (const text of shown) await region.getByText(text).first().waitFor({ timeout: 10_000 });
      // Nowhere on the page (tables, the key filters' options, confirmations' labels) is such a character left to act.
      const unseen = await page.evaluate(() => [...document.body.querySelectorAll('*')].flatMap((element) => [element.textContent ?? '', ...[...element.attributes].map((a) => a.value)]).filter((text) => /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(text.replace(/[\t\n\r]/g, ''))).length);
      expect({ link, unseen }).toEqual({ link, unseen: 0 });
    }
    expect(problems).toEqual([]);
    await context.close();
  });

  it('keeps the longest names the server takes within a 375 px screen: headings wrap, tables scroll in their box', async () => {
    const environment = 'e'.repeat(64);
    const put = await call(`${server.url}/api/v1/admin/environments/${environment}/secrets/${'N'.repeat(128)}`, { method: 'PUT', auth: admin, json: { value: 'layout-value' } });
    expect(put.status).toBe(204);
    const { page, context, problems } = await openPage(browser, { width: 375 });
    await signIn(page, server.url, admin);
    // The new key's name is in a heading of its own ("Key NAME created").
    await page.getByLabel('Name', { exact: true }).fill('W'.repeat(128));
    await page.getByLabel('Environments').fill('production');
    await page.getByLabel('Key patterns').fill('DB_URL');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByLabel('New API key').waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await nav(page, 'Secrets').click();
    await page.getByRole('heading', { name: environment }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('gives a read key 403 on every admin route and no session; an ended session 401 and the sign-in page', async () => {
    const { page, context } = await openPage(browser);
    await page.goto(`${server.url}/console/`);
    await page.getByLabel('Admin API key').fill(reader.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'RWS_FORBIDDEN' }).waitFor();
    expect(await context.cookies(server.url)).toEqual([]);
    const statuses = await page.evaluate(async ({ routes, key }) => {
      const out: string[] = [];
      for (const [method, route, body] of routes) {
        const response = await fetch(route as string, { method: method as string, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
        out.push(`${method} ${route} ${response.status} ${(await response.json()).error?.code}`);
      }
      return out;
    }, { routes: ADMIN_ROUTES, key: reader.key });
    expect(statuses).toEqual(ADMIN_ROUTES.map(([method, route]) => `${method} ${route} 403 RWS_FORBIDDEN`));

    await signIn(page, server.url, admin);
    const stale = new Date(Date.now() - 16 * 60_000).toISOString();
    await tamper(storePaths(store.dir), undefined, `UPDATE console_sessions SET last_seen_at = '${stale}'`);
    const status = await page.evaluate(async () => (await fetch('/api/v1/auth/keys')).status);
    expect(status).toBe(401);
    await nav(page, 'Status').click();
    await page.getByText('Your session has ended; sign in again.').waitFor();
    expect(await page.content()).not.toContain('Schema version');
    await context.close();
  });

  it('asks the server before ending a session that another tab may have kept open', async () => {
    const { page, context } = await openPage(browser);
    await page.clock.install();
    await signIn(page, server.url, admin);
    // This tab's clock runs 16 minutes on; the server's does not, so the session it holds is still
    // open, as when the admin worked in another tab meanwhile.
    const asked = page.waitForResponse((response) => response.url().endsWith('/console/api/session') && response.request().method() === 'GET' && response.request().headers()['x-rws-background'] === '1');
    await page.clock.fastForward('16:00');
    expect((await (await asked).json()).signed_in).toBe(true);
    await page.waitForTimeout(300);
    expect(await page.getByText('Your session has ended').count()).toBe(0);
    expect(await page.getByText('Signed in as').isVisible()).toBe(true);
    // Once the server's session has ended too, the page says so.
    await tamper(storePaths(store.dir), undefined, `UPDATE console_sessions SET last_seen_at = '${new Date(Date.now() - 16 * 60_000).toISOString()}'`);
    await page.clock.fastForward('16:00');
    await page.getByText('Your session has ended; sign in again.').waitFor();
    await context.close();
  });

  it('warns before the session ends, and "Stay signed in" keeps it open', async () => {
    const { page, context } = await openPage(browser);
    await page.clock.install();
    await signIn(page, server.url, admin);
    // The keys list has loaded: its request counts as activity and, answered after the jump,
    // would restart the idle time.
    await page.getByRole('region', { name: 'API keys, newest first' }).getByRole('link', { name: 'live tokens of ops' }).waitFor();
    expect(await page.getByText(/Your session ends in/).count()).toBe(0);
    await page.clock.fastForward('13:30');
    await page.getByText(/Your session ends in 1:[0-9]{2}\. Any action keeps it open\./).waitFor();
    await page.getByRole('button', { name: 'Stay signed in' }).click();
    await page.getByText(/Your session ends in/).waitFor({ state: 'detached' });
    await context.close();
  });
});

