// The console shows the server's text as the command line prints it: its own copy of the rule
// (the console is browser code, bundled apart) must not fall behind src/printable.ts.
import { expect, it } from 'vitest';
import { printable } from '../../src/printable.js';
import { visible } from '../../web/console/visible.js';

it('makes visible exactly what the command line escapes, spelled the same', () => {
  const samples = ['plain', 'ops\u202e)dekover(', 'a\u200bb', '\u2066x\u2069', 'tag\u{e0041}', 'line\u2028two\u2029', 'esc\u001b[31m', 'del\u007f', 'csi\u009b', 'bom\ufeff', 'alm\u061c', 'שלום', 'emoji 🔑', 'é'];
  for (const text of samples) expect({ text, shown: visible(text) }).toEqual({ text, shown: printable(text) });
  for (let code = 0; code <= 0xffff; code++) {
    const text = String.fromCharCode(code);
    if (visible(text) !== printable(text)) expect({ code, shown: visible(text) }).toEqual({ code, shown: printable(text) });
  }
});
