// The orchestrator dashboard: runs list, run page, trial page. Data comes from /dashboard/api (read-only); live
// updates arrive as server-sent events; cancel/resume post to /api/runs/{id}/... with the API token.
'use strict';

const TOKEN_KEY = 'orchestrator-api-token';
const page = document.getElementById('page');
const message = document.getElementById('message');

// A #token=... link fills the token in once; the fragment is removed so it is not left in the address bar or history.
(function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
})();

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showTokenBox(reason) {
  const box = document.getElementById('token-box');
  box.hidden = false;
  if (reason) say(reason, 'error');
  document.getElementById('token-input').focus();
}

document.getElementById('token-save').addEventListener('click', () => {
  const value = document.getElementById('token-input').value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  document.getElementById('token-input').value = '';
  document.getElementById('token-box').hidden = true;
  say('token set for this tab', 'ok');
  route();
});

function say(text, kind) {
  message.textContent = text || '';
  message.className = kind || '';
}

function headers() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ headers: headers() }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) {
    showTokenBox((body && body.error) || 'this needs the API token');
    throw new Error('unauthorized');
  }
  if (!response.ok) throw new Error((body && body.error) || ('HTTP ' + response.status));
  return body;
}

// --- small DOM helpers (text goes in as text, never as HTML) ---
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'class') node.className = v; else if (k.startsWith('on')) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}
const num = (v, digits) => v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(digits === undefined ? 4 : digits);
const percent = v => v === null || v === undefined || Number.isNaN(v) ? '-' : (100 * Number(v)).toFixed(1) + ' %';
// Exact match exists only for task data (prompt/target shards): its columns and choices appear when a trial has it.
const hasExactMatch = trials => trials.some(t => t.best_exact_match !== null && t.best_exact_match !== undefined);
const int = v => v === null || v === undefined ? '-' : Number(v).toLocaleString('en-US');
function duration(seconds) {
  if (!seconds) return '0 s';
  if (seconds < 60) return seconds.toFixed(1) + ' s';
  if (seconds < 3600) return (seconds / 60).toFixed(1) + ' min';
  return (seconds / 3600).toFixed(2) + ' h';
}
const stateCell = s => el('td', { class: 'text state-' + s }, s);

// --- live updates: text/event-stream read through fetch, so the token can travel in a header ---
let liveAbort = null;
function watch(url, onUpdate) {
  if (liveAbort) liveAbort.abort();
  const abort = new AbortController();
  liveAbort = abort;
  const live = document.getElementById('live');
  let timer = null;
  const schedule = () => { clearTimeout(timer); timer = setTimeout(onUpdate, 200); };
  (async function loop() {
    let first = true;
    while (!abort.signal.aborted) {
      try {
        const response = await fetch(url, { headers: headers(), signal: abort.signal });
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        live.className = 'on';
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const event = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            // The first update only says where the run stands now: the page has just loaded that.
            if (/^event: update/m.test(event)) { if (first) first = false; else schedule(); }
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      live.className = '';
      await new Promise(r => setTimeout(r, 2000));
    }
  })();
}

// --- sortable tables ---
function sortableTable(columns, rows, state, firstRows) {
  // columns: [{key, label, text?, value(row), render?(row)}]; state: {key, dir} kept across live refreshes.
  // firstRows: draw only that many rows until table.showAll() (a big table's first paint stays quick).
  const table = el('table', { class: 'sortable' });
  const head = el('tr');
  const body = el('tbody');
  let shown = firstRows || Infinity;
  let sorted = rows;
  const rowOf = r => el('tr', { 'data-id': r.id },
    columns.map(c => c.render ? c.render(r) : el('td', { class: c.text ? 'text' : null }, c.format ? c.format(c.value(r)) : c.value(r))));
  table.showAll = () => {
    if (shown >= sorted.length) return;
    body.append(...sorted.slice(shown).map(rowOf));
    shown = Infinity;
  };
  const draw = () => {
    const column = columns.find(c => c.key === state.key);
    sorted = rows.slice();
    if (column) {
      sorted.sort((a, b) => {
        const x = column.value(a), y = column.value(b);
        const missing = v => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
        if (missing(x) && missing(y)) return 0;
        if (missing(x)) return 1;
        if (missing(y)) return -1;
        const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), 'en', { numeric: true });
        return state.dir === 'desc' ? -order : order;
      });
    }
    body.replaceChildren(...sorted.slice(0, shown).map(rowOf));
    for (const th of head.children) th.removeAttribute('data-dir');
    if (column) head.children[columns.indexOf(column)].setAttribute('data-dir', state.dir);
  };
  for (const c of columns) {
    head.append(el('th', {
      class: c.text ? 'text' : null, 'data-key': c.key, onclick: () => {
        state.dir = state.key === c.key && state.dir === 'asc' ? 'desc' : 'asc';
        state.key = c.key;
        shown = Infinity;
        draw();
      },
    }, c.label));
  }
  table.append(el('thead', null, head), body);
  draw();
  return table;
}

// --- pages ---
const prefix = '/dashboard/';
// The chart libraries are deferred scripts: they have run once the document is parsed. Drawing waits for them; fetching does not.
const libraries = new Promise(resolve => document.readyState === 'loading'
  ? document.addEventListener('DOMContentLoaded', resolve, { once: true }) : resolve());

/** Resolves after the next frame has been painted. */
const afterPaint = () => new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 0)));

function route() {
  const path = location.pathname.startsWith(prefix) ? location.pathname.slice(prefix.length) : '';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'run' && parts.length === 2) return runPage(parts[1]);
  if (parts[0] === 'run' && parts[2] === 'trial' && parts.length === 4) return trialPage(parts[1], parts[3]);
  return runsPage();
}

function crumbs(...items) {
  document.getElementById('crumbs').replaceChildren(...items.flatMap(i => [' / ', i]));
}

const runsSort = { key: 'started', dir: 'desc' };
async function runsPage() {
  crumbs();
  document.title = 'runs - orchestrator';
  const draw = async () => {
    let runs;
    try { runs = await api('/dashboard/api/runs'); } catch (e) { page.textContent = e.message; return; }
    const columns = [
      { key: 'id', label: 'run', text: true, value: r => r.id, render: r => el('td', { class: 'text' }, el('a', { href: prefix + 'run/' + encodeURIComponent(r.id) }, r.id)) },
      { key: 'experiment', label: 'experiment', text: true, value: r => r.experiment },
      { key: 'state', label: 'state', text: true, value: r => r.state, render: r => stateCell(r.state) },
      { key: 'trials', label: 'trials', value: r => r.trials, format: v => v },
      { key: 'completed', label: 'completed', value: r => r.completed },
      { key: 'running', label: 'running', value: r => r.running },
      { key: 'failed', label: 'failed', value: r => r.failed },
      { key: 'compute', label: 'compute time', value: r => r.compute_seconds, format: duration },
      { key: 'best', label: 'best metric', value: r => r.best_value, render: r => el('td', null, r.best_value === null ? '-' : `${r.best_metric} ${num(r.best_value)} (${r.best_trial})`) },
      { key: 'started', label: 'started', text: true, value: r => r.started, format: v => new Date(v).toLocaleString('en-GB') },
    ];
    page.replaceChildren(el('h2', null, `runs (${runs.length})`),
      runs.length ? sortableTable(columns, runs, runsSort) : el('p', null, 'no runs in this runs folder yet'));
  };
  await draw();
  watch('/dashboard/api/events', draw);
}

// Run page state that survives live refreshes.
const runState = { sort: { key: 'index', dir: 'asc' }, metric: 'loss', x: 'step', smoothing: 0, pcMetric: 'best_eval_loss', plot: null, parallel: null };

async function action(runId, verb) {
  if (!token()) { showTokenBox(`${verb} needs the API token`); return; }
  try {
    await api(`/api/runs/${encodeURIComponent(runId)}/${verb}`, { method: 'POST', headers: headers() });
    say(`${verb} requested for ${runId}`, 'ok');
  } catch (e) {
    if (e.message !== 'unauthorized') say(`${verb} failed: ${e.message}`, 'error');
  }
}

function ema(values, alpha) {
  if (!alpha) return values;
  let last = null;
  return values.map(v => {
    if (v === null) return null;
    last = last === null ? v : alpha * last + (1 - alpha) * v;
    return last;
  });
}

// Sweep values spanning a decade or more (learning rates) read better on a log axis.
function logScale(values) {
  const min = Math.min(...values), max = Math.max(...values);
  return min > 0 && max / min >= 10;
}

const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const xLabels = { step: 'step', tokens: 'tokens', time: 'wall time (s)' };

function drawCurves(container, curves, title) {
  const data = [curves.grid, ...curves.curves.map(c => ema(c.y, runState.smoothing))];
  const points = curves.curves.reduce((n, c) => n + c.y.filter(v => v !== null).length, 0);
  container.setAttribute('data-points', String(points));
  container.setAttribute('data-series', String(curves.curves.length));
  const options = {
    title, width: Math.max(480, Math.min(1100, window.innerWidth - 60)), height: 320,
    scales: { x: { time: false } },
    axes: [{ label: xLabels[curves.x] }, { label: curves.metric, size: 60 }],
    series: [{ label: curves.x }, ...curves.curves.map((c, i) => ({ label: c.trial, stroke: palette[i % palette.length], width: 1.5, spanGaps: true, points: { show: false } }))],
    legend: { show: curves.curves.length <= 20 },
  };
  container.replaceChildren();
  if (typeof uPlot === 'undefined') { container.textContent = 'the uPlot chart library is not installed beside the program (make setup)'; return null; }
  return new uPlot(options, data, container);
}

async function runPage(runId) {
  document.title = runId + ' - orchestrator';
  const curvesBox = el('div', { id: 'curves', class: 'chart' });
  const parallelBox = el('div', { id: 'parallel', class: 'chart' });
  const tableBox = el('div', { id: 'trials-box' });
  const inspectBox = el('div', { id: 'inspect-box' });
  const headerBox = el('div', { id: 'run-header' });
  const select = (id, values, current, onchange, labels) => el('select', { id, onchange: e => onchange(e.target.value) },
    values.map(v => { const o = el('option', { value: v }, (labels && labels[v]) || v); if (v === current) o.selected = true; return o; }));
  let view;
  const fetchCurves = () => api(`/dashboard/api/runs/${encodeURIComponent(runId)}/curves?metric=${runState.metric}&x=${runState.x}`);
  const showCurves = async pending => {
    const curves = await pending;
    runState.plot = drawCurves(curvesBox, curves, `${curves.metric} (min/max of ${curves.buckets} buckets per trial, from ${curves.raw_points.toLocaleString('en-US')} logged values)`);
  };
  const loadCurves = () => showCurves(fetchCurves());
  const pcMetrics = { best_eval_loss: 'best eval loss', final_eval_loss: 'final eval loss', best_exact_match: 'best exact match', min_loss: 'min train loss', final_loss: 'final train loss', tokens_per_second: 'tokens/s' };
  const drawParallel = () => {
    if (typeof echarts === 'undefined') { parallelBox.textContent = 'the ECharts library is not installed beside the program (make setup)'; return; }
    const keys = view.sweep_keys;
    const numeric = keys.map(k => view.trials.every(t => t.overrides[k] !== undefined && !Number.isNaN(Number(t.overrides[k]))));
    const axes = keys.map((k, i) => numeric[i]
      ? { dim: i, name: k, type: logScale(view.trials.map(t => Number(t.overrides[k]))) ? 'log' : 'value' }
      : { dim: i, name: k, type: 'category', data: [...new Set(view.trials.map(t => t.overrides[k] ?? '-'))] });
    axes.push({ dim: keys.length, name: pcMetrics[runState.pcMetric], type: 'value', scale: true });
    const data = view.trials.map(t => [...keys.map((k, i) => numeric[i] ? Number(t.overrides[k]) : (t.overrides[k] ?? '-')), t[runState.pcMetric]]);
    if (!runState.parallel || runState.parallel.getDom() !== parallelBox) runState.parallel = echarts.init(parallelBox);
    const values = data.map(d => d[keys.length]).filter(v => v !== null && v !== undefined);
    runState.parallel.setOption({
      animation: false,
      parallelAxis: axes,
      parallel: { left: 60, right: 120, top: 40, bottom: 30 },
      visualMap: values.length ? { show: true, min: Math.min(...values), max: Math.max(...values), dimension: keys.length, inRange: { color: ['#1a9850', '#fee08b', '#d73027'] }, right: 0 } : undefined,
      series: [{ type: 'parallel', lineStyle: { width: 2, opacity: 0.7 }, data }],
    }, true);
    parallelBox.setAttribute('data-lines', String(data.length));
  };
  const drawTable = firstRows => {
    const columns = [
      { key: 'index', label: '#', value: r => r.index },
      { key: 'id', label: 'trial', text: true, value: r => r.id, render: r => el('td', { class: 'text' }, el('a', { href: `${prefix}run/${encodeURIComponent(runId)}/trial/${encodeURIComponent(r.id)}` }, r.id)) },
      ...view.sweep_keys.map(k => ({ key: 'sweep:' + k, label: k, value: r => { const v = r.overrides[k]; return v !== undefined && !Number.isNaN(Number(v)) ? Number(v) : v; }, format: v => v === undefined ? '-' : v })),
      { key: 'state', label: 'state', text: true, value: r => r.state, render: r => stateCell(r.state) },
      { key: 'attempts', label: 'attempts', value: r => r.attempts },
      { key: 'step', label: 'step', value: r => r.step, render: r => el('td', null, `${int(r.step)} / ${int(r.total_steps)}`) },
      { key: 'best_eval_loss', label: 'best eval loss', value: r => r.best_eval_loss, format: num },
      { key: 'final_eval_loss', label: 'final eval loss', value: r => r.final_eval_loss, format: num },
      ...(hasExactMatch(view.trials) ? [
        { key: 'best_exact_match', label: 'best exact match', value: r => r.best_exact_match, format: percent },
        { key: 'final_exact_match', label: 'final exact match', value: r => r.final_exact_match, format: percent }] : []),
      { key: 'min_loss', label: 'min loss', value: r => r.min_loss, format: num },
      { key: 'max_loss', label: 'max loss', value: r => r.max_loss, format: num },
      { key: 'final_loss', label: 'final loss', value: r => r.final_loss, format: num },
      { key: 'tokens_per_second', label: 'tokens/s (mean)', value: r => r.tokens_per_second, format: v => num(v, 0) },
      { key: 'max_tokens_per_second', label: 'tokens/s (max)', value: r => r.max_tokens_per_second, format: v => num(v, 0) },
      { key: 'compute', label: 'compute', value: r => r.compute_seconds, format: duration },
    ];
    const table = sortableTable(columns, view.trials, runState.sort, firstRows);
    table.id = 'trials';
    tableBox.replaceChildren(table);
    return table;
  };
  const drawHeader = () => {
    const r = view.run;
    headerBox.replaceChildren(el('h2', null, `${r.id} `, el('span', { class: 'state-' + r.state, id: 'run-state' }, r.state)),
      el('div', { class: 'controls' },
        el('span', null, `${r.trials} trial(s), ${r.completed} completed, ${r.running} running, ${r.failed} failed; compute ${duration(r.compute_seconds)}; started ${new Date(r.started).toLocaleString('en-GB')}`),
        el('button', { id: 'cancel', onclick: () => action(r.id, 'cancel') }, 'cancel run'),
        el('button', { id: 'resume', onclick: () => action(r.id, 'resume') }, 'resume run'),
        view.cancel_requested ? el('span', { class: 'state-cancelled' }, 'cancel requested') : null));
  };
  const drawInspect = () => {
    const t = view.inspect;
    if (!t.rows.length) { inspectBox.replaceChildren(el('p', null, 'no trial spec could be costed')); return; }
    inspectBox.replaceChildren(el('table', { id: 'inspect' }, el('thead', null, el('tr', null, t.columns.map(c => el('th', { class: 'text' }, c)))),
      el('tbody', null, t.rows.map(row => el('tr', null, row.map((c, i) => el('td', { class: i === 0 ? 'text' : null }, c)))))));
  };
  let loaded = false;
  const load = async () => {
    // The curves (the larger answer) are fetched while the run is; the marks time the load (make bench).
    const curves = fetchCurves();
    try {
      view = await api(`/dashboard/api/runs/${encodeURIComponent(runId)}`);
    } catch (e) { curves.catch(() => {}); page.textContent = e.message; return; }
    performance.mark('run-data');
    await libraries;
    if (!hasExactMatch(view.trials)) for (const id of ['metric', 'pc-metric'])
      for (const option of document.querySelectorAll(`#${id} option[value$=exact_match]`)) option.remove();
    // First what the top of the page shows: the header, the curves and about a screen of the table (on the first load;
    // a live redraw keeps every row, so the page does not jump). The rest of the table, the parallel coordinates and
    // the inspect table below follow once that has been painted.
    drawHeader();
    const table = drawTable(loaded ? undefined : 40);
    await showCurves(curves);
    await afterPaint();
    performance.mark('first-render');
    table.showAll();
    drawParallel();
    drawInspect();
    performance.mark('complete');
    loaded = true;
  };
  crumbs(el('a', { href: prefix + 'run/' + encodeURIComponent(runId) }, runId));
  page.replaceChildren(headerBox,
    el('h2', null, 'curves'),
    el('div', { class: 'controls' },
      el('label', null, 'metric ', select('metric', ['loss', 'eval_loss', 'accuracy', 'eval_accuracy', 'eval_exact_match', 'lr', 'grad_norm', 'tokens_per_second'], runState.metric, v => { runState.metric = v; loadCurves(); })),
      el('label', null, 'x-axis ', select('x-axis', ['step', 'tokens', 'time'], runState.x, v => { runState.x = v; loadCurves(); }, xLabels)),
      el('label', null, 'smoothing ', el('input', { id: 'smoothing', type: 'range', min: '0', max: '0.99', step: '0.01', value: String(runState.smoothing), oninput: e => { runState.smoothing = Number(e.target.value); loadCurves(); } }))),
    curvesBox,
    el('h2', null, 'trials'), tableBox,
    el('h2', null, 'sweep values against ', select('pc-metric', Object.keys(pcMetrics), runState.pcMetric, v => { runState.pcMetric = v; drawParallel(); }, pcMetrics)),
    parallelBox,
    el('h2', null, 'architecture and training FLOPs (as orchestrator inspect prints them)'), inspectBox);
  await load();
  watch(`/dashboard/api/runs/${encodeURIComponent(runId)}/events`, load);
}

async function trialPage(runId, trialId) {
  document.title = trialId + ' - orchestrator';
  crumbs(el('a', { href: prefix + 'run/' + encodeURIComponent(runId) }, runId), el('span', null, trialId));
  const charts = { loss: el('div', { id: 'curve-loss', class: 'chart' }), eval_loss: el('div', { id: 'curve-eval_loss', class: 'chart' }), lr: el('div', { id: 'curve-lr', class: 'chart' }), tokens_per_second: el('div', { id: 'curve-tokens_per_second', class: 'chart' }) };
  const info = el('div');
  const xSelect = el('select', { id: 'x-axis', onchange: e => { runState.x = e.target.value; load(); } }, ['step', 'tokens', 'time'].map(v => { const o = el('option', { value: v }, xLabels[v]); if (v === runState.x) o.selected = true; return o; }));
  page.replaceChildren(info, el('h2', null, 'curves ', xSelect), ...Object.values(charts));
  const details = el('div');
  page.append(details);
  const load = async () => {
    let view;
    try { view = await api(`/dashboard/api/runs/${encodeURIComponent(runId)}/trials/${encodeURIComponent(trialId)}`); } catch (e) { page.textContent = e.message; return; }
    await libraries;
    const t = view.trial;
    info.replaceChildren(el('h2', null, `${t.id} `, el('span', { class: 'state-' + t.state, id: 'trial-state' }, t.state)),
      el('p', null, `step ${int(t.step)} / ${int(t.total_steps)}, ${int(t.parameters)} parameters, ${t.attempts} attempt(s); best eval loss ${num(t.best_eval_loss)}, final eval loss ${num(t.final_eval_loss)}${hasExactMatch([t]) ? `; exact match best ${percent(t.best_exact_match)} / final ${percent(t.final_exact_match)}` : ''}; train loss min ${num(t.min_loss)} / max ${num(t.max_loss)} / final ${num(t.final_loss)}; ${num(t.tokens_per_second, 0)} tokens/s mean`),
      el('p', null, Object.entries(t.overrides).map(([k, v]) => `${k} = ${v}`).join(', ')),
      t.error ? el('p', { class: 'error-text' }, 'error: ' + t.error) : null);
    if (hasExactMatch([t]) && !charts.eval_exact_match) {
      charts.eval_exact_match = el('div', { id: 'curve-eval_exact_match', class: 'chart' });
      charts.tokens_per_second.after(charts.eval_exact_match);
    }
    for (const [metric, box] of Object.entries(charts)) {
      const curves = await api(`/dashboard/api/runs/${encodeURIComponent(runId)}/curves?metric=${metric}&x=${runState.x}&trials=${encodeURIComponent(trialId)}`);
      drawCurves(box, curves, metric);
    }
    details.replaceChildren(
      el('h2', null, 'attempts'),
      el('table', { id: 'attempts' }, el('thead', null, el('tr', null, ['#', 'started', 'from step', 'resumed from', 'outcome', 'end step', 'duration', 'failure reason'].map(h => el('th', { class: 'text' }, h)))),
        el('tbody', null, view.attempts.map(a => el('tr', null, el('td', null, a.number), el('td', { class: 'text' }, new Date(a.started_at).toLocaleString('en-GB')), el('td', null, int(a.start_step)),
          el('td', { class: 'text' }, a.resumed_from || '-'), stateCell(a.outcome), el('td', null, a.end_step === null ? '-' : int(a.end_step)), el('td', null, duration(a.seconds)), el('td', { class: 'error-text' }, a.error || ''))))),
      el('h2', null, 'checkpoints'),
      el('table', { id: 'checkpoints' }, el('thead', null, el('tr', null, ['step', 'checkpoint', 'written', 'committed (manifest present)'].map(h => el('th', { class: 'text' }, h)))),
        el('tbody', null, view.checkpoints.map(c => el('tr', null, el('td', null, int(c.step)), el('td', { class: 'text' }, c.id), el('td', { class: 'text' }, new Date(c.time).toLocaleString('en-GB')),
          el('td', { class: 'text' }, c.committed === null ? 'in --storage' : (c.committed ? 'yes' : 'no (deleted by keep_checkpoints)')))))),
      view.warnings.length ? el('h2', null, 'warnings') : null,
      view.warnings.length ? el('ul', null, view.warnings.map(w => el('li', null, `step ${w.step}: ${w.message}`))) : null,
      el('h2', null, `log (metrics.jsonl, last ${view.log.length} lines)`),
      el('pre', { class: 'log', id: 'log' }, view.log.join('\n')));
  };
  await load();
  watch(`/dashboard/api/runs/${encodeURIComponent(runId)}/events`, load);
}

route();
