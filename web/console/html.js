// Preact with htm: tagged templates instead of JSX, so there is no compiler step; htm builds
// elements with Preact's h(), which sets text as text (never innerHTML) and uses no eval.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
