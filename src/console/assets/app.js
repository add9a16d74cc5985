// The care-team console. Plain script, no framework, nothing loaded from elsewhere.
// Every value from the gateway goes into the page as text (textContent), never as HTML:
// device names and notes come from outside.
'use strict';

const $ = (id) => document.getElementById(id);
const PRIORITY_RANK = { high: 0, medium: 1, low: 2, info: 3 };
const PRIORITY_WORDS = { high: 'Urgent', medium: 'Soon', low: 'Low', info: 'Information' };
const OUTCOME_WORDS = {
  assisted: 'Resident helped',
  false_alarm: 'False alarm',
  emergency_services: 'Emergency services called',
  no_action: 'No action needed',
  other: 'Something else (say in the note)',
};
const PHASE_WORDS = {
  raised: 'Raised', acknowledged: 'Acknowledged', escalated: 'Escalated', resolved: 'Resolved',
  cleared: 'Device back to normal', point: 'Noted',
};
const MUTE_FOR_MS = 15 * 60 * 1000;

const state = {
  me: null,
  alerts: new Map(),
  seq: 0,
  source: null,
  connected: false,
  heard: 0,
  lostSince: null,
  health: null,
  healthError: null,
  muteUntil: 0,
  audio: null,
  view: 'alerts',
  devices: null,
  resolving: null,
  shelving: null,
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

function clock(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return 'just now';
  const m = Math.floor(s / 60);
  if (m < 60) return m === 1 ? '1 min ago' : `${m} min ago`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min ago`;
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (state.me) headers['X-CSRF-Token'] = state.me.csrf;
  }
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && state.me && path !== '/console/login') showLogin('Your session ended. Please log in again.');
  return { ok: r.ok, status: r.status, data };
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ''; }, 4000);
}

// ---- login

function showLogin(message) {
  if (state.source) { state.source.close(); state.source = null; }
  state.me = null;
  state.alerts.clear();
  $('nav').hidden = true; $('who').hidden = true;
  $('alerts-view').hidden = true; $('devices-view').hidden = true; $('report-view').hidden = true;
  $('banner').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('name').focus();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  unlockAudio();
  const name = $('name').value.trim();
  const password = $('password').value;
  if (!name || !password) { $('login-error').textContent = 'Enter your name and password.'; return; }
  const r = await api('POST', '/console/login', { name, password });
  $('password').value = '';
  if (!r.ok) {
    $('login-error').textContent = (r.data && r.data.error) || 'Could not log in.';
    $('password').focus();
    return;
  }
  await start();
});

$('logout').addEventListener('click', async () => {
  await api('POST', '/console/logout', {});
  showLogin('You are logged out.');
});

// ---- start

async function start() {
  const r = await api('GET', '/console/api/me');
  if (!r.ok) { showLogin(); return; }
  state.me = r.data;
  $('login').hidden = true;
  $('who').hidden = false;
  $('who-name').textContent = `${state.me.user} (${state.me.role})`;
  $('nav').hidden = false;
  $('tab-devices').hidden = !state.me.sees_devices;
  $('tab-alerts').hidden = !state.me.acts_on_alerts;
  $('tab-report').hidden = !state.me.sees_report;
  $('shelve-col').hidden = !state.me.shelves;
  show(state.me.acts_on_alerts ? 'alerts' : 'devices');
  if (state.me.acts_on_alerts) await loadAlerts();
  pollHealth();
}

function show(view) {
  state.view = view;
  $('alerts-view').hidden = view !== 'alerts';
  $('devices-view').hidden = view !== 'devices';
  $('report-view').hidden = view !== 'report';
  $('tab-alerts').setAttribute('aria-pressed', String(view === 'alerts'));
  $('tab-devices').setAttribute('aria-pressed', String(view === 'devices'));
  $('tab-report').setAttribute('aria-pressed', String(view === 'report'));
  if (view === 'devices') loadDevices();
}
$('tab-alerts').addEventListener('click', () => show('alerts'));
$('tab-devices').addEventListener('click', () => show('devices'));
$('tab-report').addEventListener('click', () => show('report'));

// ---- alerts and the live stream

async function loadAlerts() {
  const r = await api('GET', '/console/api/alerts');
  if (!r.ok) { lost(); setTimeout(loadAlerts, 2000); return; }
  state.alerts.clear();
  for (const a of r.data.alerts) state.alerts.set(a.id, a);
  state.seq = r.data.seq;
  render();
  connect();
}

// A page that hears nothing (the gateway pings every 5 s) for this long counts its connection
// as dead, says so, and reconnects: never a silently frozen page.
const SILENCE_MS = 15000;

function connect() {
  if (state.source) state.source.close();
  // On its own reconnects the browser sends Last-Event-ID (the last transition it saw), which
  // the gateway prefers to `since`; a new EventSource starts from what this page has.
  const es = new EventSource(`/console/api/stream?since=${state.seq}`);
  state.source = es;
  const heard = () => { state.heard = Date.now(); };
  es.addEventListener('open', () => { heard(); state.connected = true; state.lostSince = null; banner(); });
  es.addEventListener('hello', heard);
  es.addEventListener('ping', heard);
  es.addEventListener('transition', (ev) => {
    heard();
    let t;
    try { t = JSON.parse(ev.data); } catch (_) { return; }
    apply(t);
  });
  es.addEventListener('ended', () => { es.close(); showLogin('Your session ended. Please log in again.'); });
  es.addEventListener('problem', (ev) => { state.healthError = ev.data; banner(); });
  es.addEventListener('error', () => {
    lost();
    if (es.readyState === EventSource.CLOSED) retryLater(es);
  });
}

// The browser gave up (the gateway refused, or is gone): check who we are, then try again.
function retryLater(es) {
  setTimeout(async () => {
    if (state.source !== es) return;
    try {
      const r = await api('GET', '/console/api/me');
      if (r.ok) { connect(); return; }
      if (r.status === 401) return;
    } catch (_) { /* unreachable: try again */ }
    retryLater(es);
  }, 2000);
}

setInterval(() => {
  if (state.source && state.connected && Date.now() - state.heard > SILENCE_MS) {
    lost();
    connect();
  }
}, 2000);

function lost() {
  if (state.connected || state.lostSince === null) {
    state.connected = false;
    if (state.lostSince === null) state.lostSince = new Date();
  }
  banner();
}

function apply(t) {
  if (t.seq <= state.seq) return;
  state.seq = t.seq;
  const before = state.alerts.get(t.alert.id);
  if (t.alert.status === 'resolved') {
    state.alerts.delete(t.alert.id);
  } else {
    state.alerts.set(t.alert.id, t.alert);
  }
  const isNew = !before && t.alert.status === 'open';
  if (isNew || (t.item.phase === 'raised' && t.item.reason === 'repeat')) cue(t.alert);
  place(t.alert, isNew);
}

// One transition redraws one card, in its place (a wall tablet with many open alerts must not
// rebuild them all for each).
function place(a, flash) {
  const list = $('alerts');
  const old = list.querySelector(`li[data-id="${CSS.escape(a.id)}"]`);
  const focus = document.activeElement;
  const act = old && focus && old.contains(focus) && focus.dataset ? focus.dataset.act : null;
  if (!state.alerts.has(a.id)) {
    if (old) old.remove();
    counts();
    return;
  }
  const card = alertCard(a, flash);
  if (old && old.querySelector('details').open) card.querySelector('details').open = true;
  if (old) old.remove();
  const order = sorted();
  const next = order[order.findIndex((x) => x.id === a.id) + 1];
  const at = next ? list.querySelector(`li[data-id="${CSS.escape(next.id)}"]`) : null;
  list.insertBefore(card, at);
  if (act) {
    const again = card.querySelector(`[data-act="${act}"]`);
    if (again) again.focus();
  }
  counts();
}

function counts() {
  const n = state.alerts.size;
  $('empty').hidden = n > 0;
  $('count').textContent = n ? `(${n})` : '';
  document.title = n ? `(${n}) Care alerts` : 'Care alerts';
}

function where(a) {
  const l = a.location || {};
  const parts = [];
  if (l.room) parts.push(`Room ${l.room}`);
  if (l.zone) parts.push(l.zone);
  if (l.area) parts.push(l.area);
  return parts.join(', ') || 'Location not known';
}

function sorted() {
  return [...state.alerts.values()].sort((a, b) =>
    (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9)
    || Date.parse(b.raised_at) - Date.parse(a.raised_at));
}

function historyLine(h) {
  const what = PHASE_WORDS[h.phase] || h.phase;
  let line = `${clock(new Date(h.at))} ${what}`;
  if (h.phase === 'escalated' || h.level > 0) line += ` (level ${h.level})`;
  if (h.by) line += ` by ${h.by}`;
  if (h.outcome) line += `: ${OUTCOME_WORDS[h.outcome] || h.outcome}`;
  if (h.note) line += ` — “${h.note}”`;
  if (h.reason && !['raised', 'acknowledged', 'resolved'].includes(h.reason)) line += ` · ${h.reason.replace(/_/g, ' ')}`;
  return line;
}

function alertCard(a, flash) {
  const acked = a.status === 'acknowledged';
  const title = `${a.label} – ${where(a)}`;
  const headingId = `h-${a.id}`;
  const status = [];
  status.push(el('span', { class: 'timer', 'data-since': a.raised_at, 'data-prefix': 'Raised ' }, `Raised ${ago(a.raised_at)}`));
  const lines = [
    el('p', { class: 'meta' },
      el('span', { class: `badge ${a.priority}` }, PRIORITY_WORDS[a.priority] || a.priority),
      acked ? el('span', { class: 'badge acked' }, 'Acknowledged') : null,
      a.resident ? `Resident ${a.resident} · ` : '',
      `Device ${a.device_id}`),
    el('p', { class: 'meta' }, ...status,
      ` · Escalation level ${a.level}`,
      a.presses > 1 ? ` · pressed ${a.presses} times` : ''),
  ];
  if (a.told && a.told.length) lines.push(el('p', { class: 'meta' }, `Told: ${a.told.join(', ')}`));
  if (acked && a.acknowledged_at) {
    lines.push(el('p', { class: 'meta acked-by' },
      el('span', { class: 'timer', 'data-since': a.acknowledged_at, 'data-prefix': `Acknowledged by ${a.acknowledged_by} ` },
        `Acknowledged by ${a.acknowledged_by} ${ago(a.acknowledged_at)}`)));
  }
  if (a.restored_at) lines.push(el('p', { class: 'meta' }, `Device restored ${ago(a.restored_at)}; still needs a person to check`));
  const history = el('details', {},
    el('summary', {}, 'History'),
    el('ol', {}, (a.history || []).map((h) => el('li', {}, historyLine(h)))));
  const actions = el('div', { class: 'actions' },
    acked ? null : el('button', { type: 'button', class: 'primary', 'data-act': 'ack', 'data-id': a.id, 'aria-describedby': headingId, onclick: () => ack(a) }, 'Acknowledge'),
    el('button', { type: 'button', 'data-act': 'resolve', 'data-id': a.id, 'aria-describedby': headingId, onclick: () => openResolve(a) }, 'Resolve…'));
  return el('li', { class: `alert ${a.priority}${flash ? ' new' : ''}`, 'data-id': a.id, 'data-status': a.status },
    el('article', { 'aria-labelledby': headingId },
      el('h3', { id: headingId }, title), ...lines, history, actions));
}

function render(flashId) {
  const focus = document.activeElement;
  const refocus = focus && focus.dataset && focus.dataset.act ? [focus.dataset.id, focus.dataset.act] : null;
  const list = $('alerts');
  const open = new Set([...list.querySelectorAll('details[open]')].map((d) => d.closest('li').dataset.id));
  list.replaceChildren(...sorted().map((a) => {
    const card = alertCard(a, a.id === flashId);
    if (open.has(a.id)) card.querySelector('details').open = true;
    return card;
  }));
  counts();
  if (refocus) {
    const again = list.querySelector(`[data-id="${CSS.escape(refocus[0])}"][data-act="${refocus[1]}"]`);
    if (again) again.focus();
  }
}

setInterval(() => {
  for (const t of document.querySelectorAll('.timer')) t.textContent = `${t.dataset.prefix}${ago(t.dataset.since)}`;
}, 15000);

async function ack(a) {
  const r = await api('POST', `/console/api/alerts/${encodeURIComponent(a.id)}/ack`, {});
  if (r.ok) toast(`Acknowledged: ${a.label}, ${where(a)}`);
  else if (r.status !== 401) toast((r.data && r.data.error) || 'Could not acknowledge.');
}

function openResolve(a) {
  state.resolving = a;
  $('resolve-what').textContent = `${a.label} – ${where(a)}`;
  $('resolve-error').textContent = '';
  $('note').value = '';
  const box = $('outcomes');
  box.replaceChildren(...(state.me.outcomes || Object.keys(OUTCOME_WORDS)).map((o, i) =>
    el('label', {}, el('input', { type: 'radio', name: 'outcome', value: o, checked: i === 0 }), OUTCOME_WORDS[o] || o)));
  $('resolve-dialog').showModal();
  box.querySelector('input').focus();
}

$('resolve-cancel').addEventListener('click', () => $('resolve-dialog').close());
$('resolve-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const a = state.resolving;
  const picked = document.querySelector('input[name="outcome"]:checked');
  if (!a || !picked) { $('resolve-error').textContent = 'Choose what happened.'; return; }
  const note = $('note').value.trim();
  const r = await api('POST', `/console/api/alerts/${encodeURIComponent(a.id)}/resolve`,
    note ? { outcome: picked.value, note } : { outcome: picked.value });
  if (r.ok) {
    $('resolve-dialog').close();
    toast(`Resolved: ${a.label}, ${where(a)}`);
  } else if (r.status !== 401) {
    $('resolve-error').textContent = (r.data && r.data.error) || 'Could not resolve.';
  }
});

// ---- sound

function unlockAudio() {
  if (state.audio) return;
  try { state.audio = new AudioContext(); } catch (_) { state.audio = null; }
}
document.addEventListener('click', unlockAudio, { once: true });

function cue(a) {
  if (a.priority !== 'high') return;
  if (Date.now() < state.muteUntil || !state.audio) return;
  const ctx = state.audio;
  if (ctx.state === 'suspended') ctx.resume();
  const t0 = ctx.currentTime;
  for (let i = 0; i < 3; i++) {
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.frequency.value = i % 2 ? 660 : 880;
    g.gain.setValueAtTime(0.25, t0 + i * 0.3);
    g.gain.exponentialRampToValueAtTime(0.001, t0 + i * 0.3 + 0.25);
    o.connect(g).connect(ctx.destination);
    o.start(t0 + i * 0.3);
    o.stop(t0 + i * 0.3 + 0.26);
  }
}

function muteLabel() {
  const b = $('mute');
  if (Date.now() < state.muteUntil) {
    b.textContent = `Sound muted until ${clock(new Date(state.muteUntil))} – turn on`;
    b.setAttribute('aria-pressed', 'true');
  } else {
    state.muteUntil = 0;
    b.textContent = 'Mute sound for 15 minutes';
    b.setAttribute('aria-pressed', 'false');
  }
}
$('mute').addEventListener('click', () => {
  state.muteUntil = Date.now() < state.muteUntil ? 0 : Date.now() + MUTE_FOR_MS;
  muteLabel();
});
setInterval(muteLabel, 10000);

// ---- the gateway banner

const COMPONENT_WORDS = (name) => {
  if (name === 'journal') return 'The gateway cannot store events';
  const [kind, n] = name.split(':');
  if (kind === 'adapter') return `Devices on “${n}” are not connected`;
  if (kind === 'sink') return `Messages to “${n}” are not being delivered`;
  return `${n || name} is not working`;
};

function banner() {
  const b = $('banner');
  const lines = [];
  if (state.lostSince) {
    lines.push(`Connection to the gateway lost – data may be stale since ${clock(state.lostSince)}. Reconnecting…`);
  }
  if (state.healthError) lines.push(state.healthError);
  if (state.health && !state.health.ready) {
    for (const [name, c] of Object.entries(state.health.components || {})) {
      if (c.ready) continue;
      let line = COMPONENT_WORDS(name);
      if (c.backlog) line += ` (${c.backlog} waiting)`;
      if (c.reason) line += `: ${c.reason}`;
      lines.push(line);
    }
  }
  b.hidden = lines.length === 0;
  b.classList.toggle('lost', Boolean(state.lostSince));
  b.replaceChildren(...lines.map((l) => el('p', {}, l)));
}

async function pollHealth() {
  if (!state.me) return;
  try {
    const r = await fetch('/console/api/health', { credentials: 'same-origin' });
    if (r.status === 401) { showLogin('Your session ended. Please log in again.'); return; }
    state.health = await r.json();
    state.healthError = null;
    if (!state.me.acts_on_alerts) state.lostSince = null;
  } catch (_) {
    if (!state.me.acts_on_alerts) lost();
  }
  banner();
  setTimeout(pollHealth, 5000);
}

// ---- devices

async function loadDevices() {
  const r = await api('GET', '/console/api/devices');
  if (!r.ok) return;
  state.devices = r.data;
  const areas = [...new Set(r.data.devices.map((d) => d.area).filter(Boolean))].sort();
  const sel = $('area');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '' }, 'All areas'), ...areas.map((a) => el('option', { value: a }, a)));
  sel.value = areas.includes(keep) ? keep : '';
  renderDevices();
}
$('area').addEventListener('change', renderDevices);

function day(d) {
  return d.toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

function episodeLine(e) {
  const from = new Date(e.from);
  if (!e.to) return `Offline since ${day(from)}`;
  const to = new Date(e.to);
  const same = from.toDateString() === to.toDateString();
  return `${day(from)} – ${same ? clock(to) : day(to)}`;
}

function renderDevices() {
  const d = state.devices;
  if (!d) return;
  const area = $('area').value;
  const shelved = new Set(d.shelves.map((s) => s.device_id));
  const mayShelve = state.me && state.me.shelves;
  const rows = d.devices.filter((x) => !area || x.area === area).map((x) => {
    const b = x.battery || {};
    const battery = b.percent !== undefined ? `${Math.round(b.percent)}%` : (b.low ? 'Low' : '–');
    const s = x.signal || {};
    const signal = s.rssi_dbm !== undefined ? `${s.rssi_dbm} dBm` : (s.lqi !== undefined ? `link ${s.lqi}` : '–');
    const supervision = x.check_in ? (x.offline ? 'Missed check-in' : `Every ${x.check_in}`) : 'Not supervised';
    const episodes = x.offline_episodes || [];
    const cells = [
      el('td', {}, x.id, shelved.has(x.id) ? ' (shelved)' : ''),
      el('td', {}, [x.room ? `Room ${x.room}` : '', x.area || ''].filter(Boolean).join(', ') || '–'),
      el('td', {}, ago(x.last_seen)),
      el('td', { class: b.low ? 'bad' : '' }, battery),
      el('td', {}, signal),
      el('td', { class: x.offline ? 'bad' : '' }, supervision),
      el('td', { 'data-col': 'offline' }, episodes.length
        ? el('ul', { class: 'episodes' }, episodes.map((e) => el('li', {}, episodeLine(e))))
        : 'Never'),
    ];
    if (mayShelve) {
      cells.push(el('td', {}, shelved.has(x.id) ? 'Shelved'
        : el('button', { type: 'button', 'data-act': 'shelve', 'data-device': x.id, 'aria-label': `Shelve ${x.id}`, onclick: () => openShelve(x) }, 'Shelve…')));
    }
    return el('tr', { 'data-device': x.id }, ...cells);
  });
  $('devices').tBodies[0].replaceChildren(...rows);
  $('no-shelves').hidden = d.shelves.length > 0;
  $('shelves').replaceChildren(...d.shelves.map((s) =>
    el('li', { 'data-device': s.device_id },
      `${s.device_id}: ${s.reason || 'no reason given'} – by ${s.by}, until ${clock(new Date(s.until))}`,
      mayShelve ? el('button', { type: 'button', 'data-act': 'unshelve', 'aria-label': `Take ${s.device_id} off the shelf`, onclick: () => unshelve(s.device_id) }, 'Take off shelf') : null)));
}

// ---- shelving

function openShelve(x) {
  state.shelving = x.id;
  $('shelve-what').textContent = `${x.id}${x.room ? `, Room ${x.room}` : ''}${x.area ? `, ${x.area}` : ''}`;
  $('shelve-error').textContent = '';
  $('shelve-reason').value = '';
  $('shelve-dialog').showModal();
  $('shelve-reason').focus();
}

$('shelve-cancel').addEventListener('click', () => $('shelve-dialog').close());
$('shelve-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const device = state.shelving;
  const reason = $('shelve-reason').value.trim();
  if (!device) return;
  if (!reason) { $('shelve-error').textContent = 'Say why: everyone is told.'; return; }
  const r = await api('POST', `/console/api/devices/${encodeURIComponent(device)}/shelve`,
    { reason, for: $('shelve-for').value });
  if (r.ok) {
    $('shelve-dialog').close();
    toast(`Shelved: ${device} until ${clock(new Date(r.data.until))}`);
    loadDevices();
  } else if (r.status !== 401) {
    $('shelve-error').textContent = (r.data && r.data.error) || 'Could not shelve.';
  }
});

async function unshelve(device) {
  const r = await api('POST', `/console/api/devices/${encodeURIComponent(device)}/unshelve`, {});
  if (r.ok) { toast(`Off the shelf: ${device}`); loadDevices(); }
  else if (r.status !== 401) toast((r.data && r.data.error) || 'Could not take it off the shelf.');
}

start();
