// Debian's Chromium, headless, driven by playwright-core (which never downloads a browser: it is
// given the executable). One browser per test file; a page records every console error, page
// error and CSP violation so that a test can assert there were none.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const SCREENSHOTS = fileURLToPath(new URL('../../../docs/screenshots/', import.meta.url));

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, page errors and `securitypolicyviolation` events seen so far. */
  problems: string[];
}

export async function openPage(browser: Browser, options: { width?: number } = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: options.width ?? 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content Security Policy|Refused to/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  // Reported to the page as DOM events: listened for in every document the page loads.
  await page.exposeFunction('__rwsViolation', (text: string) => problems.push(`csp: ${text}`));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => (window as unknown as { __rwsViolation(text: string): void }).__rwsViolation(`${event.violatedDirective} ${event.blockedURI}`));
  });
  return { page, context, problems };
}

export async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(`${url}/console/`);
  await page.getByLabel('Admin API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  // The keys list has loaded: a test that ends the session next must not have this request still
  // in flight, or its 401 signs the page out before the test looks.
  const keys = page.getByRole('region', { name: 'API keys, newest first' });
  await keys.waitFor();
  await keys.getByText('Loading…').waitFor({ state: 'detached' });
}

/** Light and dark, into docs/screenshots/NAME-light.png and NAME-dark.png (only with RWS_UPDATE_SCREENSHOTS=1). */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  for (const colorScheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme });
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${colorScheme}.png`), fullPage, animations: 'disabled' });
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** The navigation's link to a page (other links may share its words). */
export function nav(page: Page, name: string) {
  return page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name, exact: true });
}
