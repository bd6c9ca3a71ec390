// Requests per minute, success against failure, as stacked bars in SVG (attributes only: the
// page's policy allows no inline style). A sentence above it says the same for screen readers.
import { html } from './html.js';

const WIDTH = 600;
const HEIGHT = 140;
const PAD = { left: 34, right: 6, top: 8, bottom: 20 };

export function RequestChart({ data, title }) {
  if (!data) return html`<figure class="chart"><figcaption>${title}: loading…</figcaption></figure>`;
  const bucketMs = data.bucket_minutes * 60_000;
  const start = Date.parse(data.since);
  const count = Math.round((Date.parse(data.until) - start) / bucketMs);
  const slots = Array.from({ length: count }, () => ({ success: 0, failure: 0 }));
  for (const bucket of data.buckets) {
    const index = Math.floor((Date.parse(bucket.start) - start) / bucketMs);
    if (index >= 0 && index < count) slots[index] = bucket;
  }
  // Per minute: a ten-minute bucket's count over ten.
  const rate = (n) => n / data.bucket_minutes;
  const peak = Math.max(1, ...slots.map((s) => rate(s.success + s.failure)));
  const total = slots.reduce((sum, s) => sum + s.success + s.failure, 0);
  const failed = slots.reduce((sum, s) => sum + s.failure, 0);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const barW = plotW / count;
  const y = (value) => PAD.top + plotH - (value / peak) * plotH;
  const summary = `${title}: ${total} requests, ${failed} failed; at most ${formatRate(peak)} per minute.`;
  const format = data.bucket_minutes === 1 ? { hour: '2-digit', minute: '2-digit' } : { weekday: 'short', hour: '2-digit', minute: '2-digit' };
  const label = (offset) => new Date(start + offset).toLocaleString(undefined, format);
  return html`<figure class="chart">
    <figcaption>${summary}</figcaption>
    <svg viewBox=${`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label=${summary}>
      <line class="axis" x1=${PAD.left} y1=${PAD.top + plotH} x2=${WIDTH - PAD.right} y2=${PAD.top + plotH} />
      <text class="tick" x=${PAD.left - 4} y=${PAD.top + 8} text-anchor="end">${formatRate(peak)}</text>
      <text class="tick" x=${PAD.left - 4} y=${PAD.top + plotH} text-anchor="end">0</text>
      <text class="tick" x=${PAD.left} y=${HEIGHT - 4}>${label(0)}</text>
      <text class="tick" x=${WIDTH - PAD.right} y=${HEIGHT - 4} text-anchor="end">${label(count * bucketMs)}</text>
      ${slots.map((s, i) => {
        const x = PAD.left + i * barW;
        const ok = rate(s.success);
        const bad = rate(s.failure);
        if (ok + bad === 0) return null;
        return html`<g>
          <rect class="ok" x=${x} y=${y(ok)} width=${Math.max(barW - 0.5, 0.5)} height=${PAD.top + plotH - y(ok)} />
          <rect class="bad" x=${x} y=${y(ok + bad)} width=${Math.max(barW - 0.5, 0.5)} height=${y(ok) - y(ok + bad)} />
        </g>`;
      })}
    </svg>
    <p class="legend"><span class="swatch ok"></span> success <span class="swatch bad"></span> failure</p>
  </figure>`;
}

function formatRate(value) {
  return value >= 10 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
}
