// Errors already told in the server's log where they were found, in full and once: a request
// that answers with one (a secrets file refused at its load) does not log it again. Each request
// to a refused file logged `SopsError RWS_SOPS_MAC_MISMATCH` alone, naming neither the file nor
// what to do, a line a request.
const logged = new WeakSet<object>();

export function markLogged(error: unknown): void {
  if (typeof error === 'object' && error !== null) logged.add(error);
}

export function wasLogged(error: unknown): boolean {
  return typeof error === 'object' && error !== null && logged.has(error);
}
