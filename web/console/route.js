// The page and its filters live in the URL's fragment (`#/audit?event=secret.read`), so a view
// can be shared and reloaded; the fragment never reaches the server or a Referer.
import { useEffect, useState } from 'preact/hooks';

export const PAGES = [
  ['keys', 'API keys'],
  ['tokens', 'Tokens'],
  ['audit', 'Audit'],
  ['secrets', 'Secrets'],
  ['status', 'Status'],
];

export function parseRoute(hash = location.hash) {
  const text = hash.replace(/^#\/?/, '');
  const mark = text.indexOf('?');
  const name = mark === -1 ? text : text.slice(0, mark);
  const params = new URLSearchParams(mark === -1 ? '' : text.slice(mark + 1));
  return { page: PAGES.some(([id]) => id === name) ? name : 'keys', params };
}

export function href(page, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') query.set(name, value);
  const text = query.toString();
  return `#/${page}${text ? `?${text}` : ''}`;
}

export function go(page, params) {
  location.hash = href(page, params);
}

export function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const update = () => setRoute(parseRoute());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
