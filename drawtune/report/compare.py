"""The page that compares any two models: their metrics side by side with the difference, and
their pictures of the same test drawings (error overlays for detection, the confusion matrix
for classification)."""

from __future__ import annotations

import base64
import json

from .html import page

COMPARE_KEYS = ("map", "map50", "map75", "precision50", "recall50", "f1_50", "n_unparseable")
COMPARE_CLASSIFY_KEYS = ("accuracy", "macro_f1", "n_invalid", "invalid_rate")

_JS = """
const D = JSON.parse(document.getElementById('data').textContent);
const fmt = (v, k) => (typeof v === 'number' && !D.counts.includes(k)) ? v.toFixed(3) : String(v);
const esc = s => String(s).replace(/[&<>'"]/g, c => '&#' + c.charCodeAt(0) + ';');
function cell(v, cls) { return '<td class="num' + (cls ? ' ' + cls : '') + '">' + v + '</td>'; }
function show() {
  const a = document.getElementById('a').value, b = document.getElementById('b').value;
  let t = '<thead><tr><th>metric</th><th class="num">' + esc(a) + '</th><th class="num">' +
    esc(b) + '</th><th class="num">' + esc(b) + ' − ' + esc(a) + '</th></tr></thead><tbody>';
  for (const k of D.keys) {
    const x = D.metrics[a][k], y = D.metrics[b][k];
    if (x === undefined && y === undefined) continue;
    const d = (x === undefined || y === undefined) ? undefined : y - x;
    const cls = d === undefined || Math.abs(d) < 5e-5 ? '' : (d > 0 ? 'pos' : 'neg');
    t += '<tr><th>' + esc(k) + '</th>' + cell(fmt(x ?? '–', k)) + cell(fmt(y ?? '–', k)) +
      cell(d === undefined ? '–' : (d > 0 ? '+' : '') + fmt(d, k), cls) + '</tr>';
  }
  document.getElementById('table').innerHTML = t + '</tbody>';
  let p = '';
  for (const d of D.drawings) {
    p += '<h3>' + esc(d) + '</h3><div class="grid">';
    for (const m of [a, b]) {
      const src = (D.pictures[m] || {})[d];
      p += '<figure>' + (src ? '<img style="max-width:560px" src="' + src + '" alt="' +
        esc(m + ': ' + d) + '">' : '<p class="muted">(no picture)</p>') +
        '<figcaption>' + esc(m) + '</figcaption></figure>';
    }
    p += '</div>';
  }
  document.getElementById('pictures').innerHTML = p;
}
for (const id of ['a', 'b']) {
  const s = document.getElementById(id);
  D.models.forEach(m => s.add(new Option(m, m)));
  s.onchange = show;
}
document.getElementById('b').selectedIndex = D.models.length > 1 ? 1 : 0;
show();
"""


def compare_page(metrics: dict, pictures: dict[str, dict[str, bytes]]) -> str:
    """One self-contained page where the reader picks any two models (best first) and sees
    their metrics with the difference and their ``pictures[model][drawing]`` side by side."""
    models = sorted(metrics, key=lambda n: (-metrics[n].get("map", -1), n))
    keys = (*COMPARE_KEYS, *COMPARE_CLASSIFY_KEYS)
    data = {
        "models": models,
        "keys": list(keys),
        "counts": ["n_unparseable", "n_invalid"],
        "metrics": {m: {k: metrics[m][k] for k in keys if k in metrics[m]} for m in models},
        "drawings": sorted({d for p in pictures.values() for d in p}),
        "pictures": {
            m: {d: "data:image/png;base64," + base64.b64encode(b).decode() for d, b in p.items()}
            for m, p in sorted(pictures.items())
        },
    }
    payload = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    body = (
        "<p>Compare <select id='a'></select> with <select id='b'></select></p>"
        "<table id='table'></table><div id='pictures'></div>"
        f"<script type='application/json' id='data'>{payload}</script><script>{_JS}</script>"
    )
    lead = (
        "Pick any two models: their metrics with the difference, and their pictures of the same "
        "test drawings (true boxes blue and solid, predictions orange and dashed)."
    )
    return page("Compare two models", body, lead)
