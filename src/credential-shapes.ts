// API keys and tokens in text meant for output or for the record, wherever that text came from: a
// word typed where an id or a name was expected (`run-with-secrets $KEY -- job`, `secrets-server
// apikey revoke $KEY`, `--subject "$RWS_API_KEY"`), which usage errors quote back and requests
// carry, or a vault's answer (a name, an id, an error code). Both programs pass their output lines
// through redactCredentials; the server refuses a key where it would keep one.

// A key in any case: upper-case hex is the same key, and a vault's error code (`RWS_SK_0A1B…`
// passes the wrapper's code grammar) is upper case.
const CREDENTIAL_SHAPES = /[Rr][Ww][Ss]_[Ss][Kk]_[0-9A-Za-z]{8,}|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** `text` with every API key as `rws_sk_[redacted]` and every JWT as `eyJ[redacted token]`. */
export function redactCredentials(text: string): string {
  return text.replace(CREDENTIAL_SHAPES, (found) => (found.toLowerCase().startsWith('rws_sk_') ? 'rws_sk_[redacted]' : 'eyJ[redacted token]'));
}

/** An API key (`rws_sk_` and 32 hex digits, in any case) anywhere in `text`. */
export function holdsApiKey(text: string): boolean {
  return /rws_sk_[0-9a-f]{32}/i.test(text);
}
