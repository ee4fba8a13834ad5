// Entry point: routing between the list and a trace, the API key prompt, freshness and
// live mode.

import { onKeyNeeded, refreshInterval } from './api.js';
import { $, show } from './dom.js';
import { init, showList } from './list.js';
import * as loc from './location.js';
import { showTrace } from './trace.js';

const LIVE_EVERY_MS = 5000;

const SOURCES = {
  materialized_view: 'answered from the summaries (materialized view)',
  summary_table: 'answered from the summaries (incremental table)',
  on_the_fly: 'aggregated from spans on the fly (no summaries cover this range)',
  spans: 'read from spans',
};

async function freshness({ source, ageSeconds }) {
  const box = $('freshness');
  const parts = [SOURCES[source] ?? source ?? ''];
  let stale = false;
  const fromSummaries = source === 'materialized_view' || source === 'summary_table';
  if (fromSummaries && ageSeconds !== null) {
    parts.push(`summaries ${ageSeconds < 90 ? `${ageSeconds.toFixed(0)} s` : `${(ageSeconds / 60).toFixed(1)} min`} old`);
    const interval = await refreshInterval();
    if (interval && ageSeconds > 2 * interval) {
      stale = true;
      parts.push(`older than two refresh intervals (${interval} s): recent traces may be missing`);
    }
  }
  box.textContent = parts.filter(Boolean).join(' · ');
  box.classList.toggle('stale', stale);
  box.dataset.source = source ?? '';
}

function askKey(refused) {
  const dialog = $('key-dialog');
  const form = $('key-form');
  const field = $('key-input');
  $('key-error').textContent = refused ? 'That key was refused (401). Try again.' : '';
  show($('key-error'), refused);
  field.value = '';
  return new Promise((resolve) => {
    const done = (key) => {
      form.onsubmit = null;
      dialog.oncancel = null;
      if (dialog.open) dialog.close();
      resolve(key);
    };
    form.onsubmit = (ev) => {
      ev.preventDefault();
      done(field.value);
    };
    dialog.oncancel = () => done(null);
    dialog.showModal();
    field.focus();
  });
}

function route() {
  const s = loc.read();
  $('live').checked = s.live === '1';
  const trace = s.view === 'trace' && s.id;
  show($('list-view'), !trace);
  show($('trace-view'), Boolean(trace));
  if (trace) {
    document.title = `trace ${s.id} · srql`;
    showTrace(s.id, freshness);
  } else {
    document.title = 'srql · traces';
    showList(s);
  }
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  window.history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', route);

$('live').addEventListener('change', () => {
  loc.go({ ...loc.read(), live: $('live').checked ? '1' : '' }, { replace: true });
});
setInterval(() => {
  const s = loc.read();
  if (s.live !== '1' || s.view === 'trace' || s.page > 1 || document.hidden) return;
  showList(s, { live: true });
}, LIVE_EVERY_MS);

onKeyNeeded(askKey);
init(freshness);
route();
