// Text from the server made safe to look at. Key names and token subjects are free text chosen by
// whoever holds an API key (a read key names its tokens' subjects), and they are shown beside
// text the server wrote: a bidi override (U+202E) shows the rest of its cell reversed, so a
// subject can turn the server's own " (offline at …)" around or a key name can read "(revoked)",
// and a zero-width character makes a second "ops" look like the first. Every control, format
// (Cf) or separator character is shown as `\uXXXX`, as the command line shows it (src/printable.ts).
const UNSEEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

function escapeUnits(match) {
  let out = '';
  for (let i = 0; i < match.length; i++) out += `\\u${match.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

export function visible(text) {
  return text.replace(UNSEEN, escapeUnits);
}

/** JSON.parse's reviver: every string of an answer as it will be shown. */
export function visibleStrings(_key, value) {
  return typeof value === 'string' ? visible(value) : value;
}
