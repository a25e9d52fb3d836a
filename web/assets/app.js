// The hosted payment page of sessiond.
//
// It reads the session token from its own path, shows the session with
// client.get and walks the flow of the session's type with
// client.transition, both JSON-RPC 2.0 over POST /rpc. It follows changes
// made elsewhere through a WebSocket subscription (client.subscribe on
// /rpc/ws) and polls client.get every 2 s whenever the socket is not up.
// No framework, no build step; the DOM is built with createElement and
// textContent only.
'use strict';

(() => {
  // ---------------------------------------------------------------- setup

  const POLL_MS = 2000; // polling when the socket is down
  const SAFETY_POLL_MS = 15000; // polling while the socket is up
  const REDIRECT_DELAY_S = 4;
  const FINAL = new Set([10, 11, 12]);

  const segments = location.pathname.split('/').filter(Boolean);
  const token = decodeURIComponent(segments[segments.length - 1] || '');
  const body = document.body;
  const el = (id) => document.getElementById(id);

  const TEST_BANK = { id: 'testbank', name: 'Test Bank' };
  const TEST_ACCOUNTS = [
    { label: 'Everyday account', holder: 'Alex Tester', iban: 'SE4550000000058398257466', bban: '50000000058398257466' },
    { label: 'Savings account', holder: 'Alex Tester', iban: 'SE7280000810340009783242', bban: '80000810340009783242' },
  ];

  // What the error codes of an aborted session mean, in words.
  const ERROR_WORDS = {
    psu_no_funds: 'There isn’t enough money in the account to make this payment.',
    psu_invalid_credentials: 'The bank couldn’t verify your login details.',
    psu_abandoned_session: 'The session was cancelled before it was finished.',
    psu_configuration_error: 'Your bank account isn’t set up for this kind of payment.',
    psu_not_customer: 'You logged in as someone other than the person this payment is for.',
    psu_disabled_bank_id_extended_use: 'Your BankID can’t be used for this: its extended use is turned off.',
    psu_logged_into_internet_bank: 'You’re logged in to your internet bank somewhere else. Log out there and try again.',
    generic_bank_error: 'The bank reported an error.',
    generic_user_error: 'The bank couldn’t complete the request.',
    name_mismatch: 'The account holder’s name doesn’t match the name on the order.',
    expired_session: 'The session timed out before it was finished.',
    merchant_rejected: 'The merchant declined it.',
  };

  // What each session type is called, and its steps as the side list
  // shows them: the states each step covers.
  const TYPES = {
    deposit: {
      kind: 'Payment', noun: 'payment', doneTitle: 'Payment complete',
      steps: [['Choose bank', [0]], ['Log in', [1, 2]], ['Choose account', [3]], ['Confirm & sign', [4, 5, 6, 7, 8, 9]], ['Done', [12]]],
    },
    recurring_payment: {
      kind: 'Recurring payment', noun: 'recurring payment', doneTitle: 'Recurring payment set up',
      steps: [['Choose bank', [0]], ['Log in', [1, 2]], ['Choose account', [3]], ['Confirm & sign', [4, 5, 6, 7, 8, 9]], ['Done', [12]]],
    },
    withdrawal: {
      kind: 'Payout', noun: 'payout', doneTitle: 'Payout confirmed',
      steps: [['Choose bank', [0]], ['Log in', [1, 2]], ['Choose account', [3]], ['Confirm', [4]], ['Done', [12]]],
    },
    bank_account_selection: {
      kind: 'Share a bank account', noun: 'request', doneTitle: 'Bank account shared',
      steps: [['Choose bank', [0]], ['Log in', [1, 2]], ['Choose account', [3]], ['Confirm', [4]], ['Done', [12]]],
    },
    authentication: {
      kind: 'Identify yourself', noun: 'identification', doneTitle: 'Identity confirmed',
      steps: [['Choose bank', [0]], ['Log in', [1]], ['Confirm', [2]], ['Done', [12]]],
    },
  };
  const typeInfo = (t) => TYPES[t] || TYPES.deposit;

  // The states that count as steps, by type (API.md section 3): the
  // session's current_step is an index into this.
  const PATHS = {
    deposit: [0, 1, 2, 3, 4, 5, 8, 9, 12],
    recurring_payment: [0, 1, 2, 3, 4, 5, 8, 9, 12],
    withdrawal: [0, 1, 2, 3, 4, 12],
    bank_account_selection: [0, 1, 2, 3, 4, 12],
    authentication: [0, 1, 2, 12],
  };
  const isPayment = (t) => t === 'deposit' || t === 'recurring_payment';

  const app = {
    session: null, // the latest client.get answer
    version: null, // the session's version, when known...
    versionState: null, // ...and the state it was known at
    errorCode: null,
    epoch: 0, // counts applied moves, to drop client.get answers they overtook
    busy: false,
    waiting: null, // {moves}: the rest of a move chain that waits for the merchant's approval
    retrying: false,
    confirmCancel: false,
    expiredLocally: false,
    deadline: null, // performance.now() of the end of the session
    warnAt: null,
    screenKey: null,
    gone: false, // the token stopped working
    account: null, // the account chosen on this page, to show it when signing
    redirectTimer: null,
    transport: 'none',
  };

  // ------------------------------------------------------------------ rpc

  class RPCError extends Error {
    constructor(e) {
      super(e.message || 'error');
      this.code = e.code;
      this.errorName = (e.data && e.data.error_name) || '';
    }
  }

  let nextID = 0;
  async function rpc(method, params) {
    const res = await fetch('/rpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++nextID, method, params: Object.assign({ token }, params) }),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const msg = await res.json();
    if (msg.error) throw new RPCError(msg.error);
    return msg.result;
  }

  // --------------------------------------------------------- formatting

  function localeOf(s) {
    const raw = String((s && s.locale) || 'en').replace(/_/g, '-');
    try {
      return Intl.getCanonicalLocales(raw)[0] || 'en';
    } catch (_) {
      return 'en';
    }
  }

  function money(s) {
    if (s.amount == null || !s.currency_id) return '';
    const opts = { style: 'currency', currency: String(s.currency_id).toUpperCase() };
    for (const loc of [localeOf(s), 'en']) {
      try {
        return new Intl.NumberFormat(loc, opts).format(Number(s.amount));
      } catch (_) { /* try the next locale */ }
    }
    return Number(s.amount).toFixed(2) + ' ' + opts.currency;
  }

  const brandOf = (s) => (s && s.brand_name) || 'sessiond';

  function clock(secs) {
    secs = Math.max(0, secs);
    const h = Math.floor(secs / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const ss = String(secs % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  function spaced(iban) {
    return iban.replace(/(.{4})/g, '$1 ').trim();
  }

  // ---------------------------------------------------------------- DOM

  function h(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') n.className = v;
      else if (k === 'text') n.textContent = v;
      else if (k === 'onclick') n.addEventListener('click', v);
      else n.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  function setStatus(text, kind) {
    const s = el('status');
    s.textContent = text || '';
    s.className = 'status' + (kind ? ' is-' + kind : '');
    s.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  }

  function setTransport(t) {
    app.transport = t;
    body.dataset.transport = t;
  }

  // --------------------------------------------------------------- moves

  // A move is {state, bank?, bank_account?, error_code?}; a chain of them
  // runs in order, each with the version the one before returned.
  function knownVersion() {
    const s = app.session;
    return app.version != null && s && app.versionState === s.state ? app.version : null;
  }

  function applyMoveResult(r) {
    app.epoch++;
    app.version = r.version;
    app.versionState = r.state;
    app.errorCode = r.error_code || null;
    if (app.session) app.session.state = r.state;
  }

  async function runMoves(moves, busyText) {
    if (app.busy || app.gone) return;
    app.busy = true;
    app.confirmCancel = false;
    setStatus(busyText || 'One moment…');
    syncBusy();
    let i = 0;
    try {
      for (; i < moves.length; i++) {
        const mv = moves[i];
        const params = Object.assign({}, mv);
        const v = knownVersion();
        if (v != null) params.version = v;
        const r = await rpc('client.transition', params);
        applyMoveResult(r);
        if (FINAL.has(r.state)) break;
      }
      app.waiting = null;
      app.busy = false;
      setStatus('');
      await refresh();
    } catch (e) {
      app.busy = false;
      await moveFailed(e, moves.slice(i));
    } finally {
      app.busy = false;
      render();
    }
  }

  async function moveFailed(e, rest) {
    if (!(e instanceof RPCError)) {
      setStatus('We couldn’t reach the server. Check your connection and try again.', 'error');
      return;
    }
    switch (e.errorName) {
      case 'ApprovalRequired':
        app.waiting = { moves: rest };
        setStatus('');
        await refresh();
        return;
      case 'VersionConflict':
        app.version = null;
        await refresh();
        setStatus('This payment was updated somewhere else, so the page shows it as it is now. Check it and try again.', 'warn');
        return;
      case 'InvalidStateTransition':
        app.version = null;
        await refresh();
        setStatus('That step isn’t possible any more: the session moved on somewhere else.', 'warn');
        return;
      case 'SessionExpired':
        app.expiredLocally = true;
        setStatus('');
        await refresh();
        return;
      case 'NotFound':
        goneForGood();
        return;
      case 'RateLimited':
        setStatus('Too many attempts. Wait a moment, then try again.', 'error');
        return;
      default:
        setStatus('Something went wrong (' + (e.errorName || e.code) + '). Please try again.', 'error');
    }
  }

  // retryApproval tries the chain that waits for the merchant's approval
  // again; it runs when the session changes (and on each poll, since
  // client.get does not show the approval).
  async function retryApproval() {
    const w = app.waiting;
    if (!w || app.busy || app.retrying || !app.session) return;
    if (FINAL.has(app.session.state) || app.session.state !== 4) {
      app.waiting = null;
      render();
      return;
    }
    app.retrying = true;
    try {
      const first = Object.assign({}, w.moves[0]);
      const r = await rpc('client.transition', first);
      applyMoveResult(r);
      app.waiting = null;
      app.retrying = false;
      const rest = w.moves.slice(1);
      if (rest.length && !FINAL.has(r.state)) {
        await runMoves(rest, 'Approved. Opening Test Bank…');
      } else {
        await refresh();
      }
    } catch (e) {
      if (!(e instanceof RPCError && e.errorName === 'ApprovalRequired')) {
        app.waiting = null;
        await moveFailed(e, []);
      }
    } finally {
      app.retrying = false;
      render();
    }
  }

  // ------------------------------------------------------------ reading

  let refreshing = null;
  let refreshAgain = false;

  // refresh re-reads the session with client.get; calls made while one is
  // running share it and cause one more read after it.
  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        refreshAgain = false;
        const epoch = app.epoch;
        try {
          const s = await rpc('client.get', {});
          if (epoch !== app.epoch) {
            refreshAgain = true; // a move overtook this read
            continue;
          }
          applySession(s);
          if (el('status').classList.contains('is-offline')) setStatus('');
        } catch (e) {
          if (e instanceof RPCError && e.errorName === 'NotFound') {
            goneForGood();
            return;
          }
          if (!app.busy) {
            setStatus('Connection problem: trying again…', 'warn');
            el('status').classList.add('is-offline');
          }
        }
      } while (refreshAgain);
    })();
    return refreshing.finally(() => {
      refreshing = null;
    });
  }

  function applySession(s) {
    app.session = s;
    if (s.version != null) {
      app.version = s.version;
      app.versionState = s.state;
    } else if (app.versionState !== s.state) {
      app.version = null; // moved elsewhere: the version we knew is stale
    }
    if (Object.prototype.hasOwnProperty.call(s, 'error_code')) app.errorCode = s.error_code || null;
    else if (!FINAL.has(s.state)) app.errorCode = null;

    const sm = (s.view_state && s.view_state.session_management) || null;
    const now = performance.now();
    if (sm && typeof sm.end === 'number') {
      app.deadline = now + sm.end * 1000;
      app.warnAt = now + (typeof sm.warning === 'number' ? sm.warning : sm.end) * 1000;
      if (!FINAL.has(s.state)) app.expiredLocally = sm.active === false || sm.end <= 0;
    } else {
      app.deadline = app.warnAt = null;
    }
    render();
    tick();
    schedulePoll();
    if (FINAL.has(s.state)) stopLive();
  }

  function goneForGood() {
    app.gone = true;
    stopLive();
    render();
  }

  // ------------------------------------------------------- live updates

  let pollTimer = null;

  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (app.gone) return;
    const s = app.session;
    if (s && FINAL.has(s.state)) return;
    const every = app.transport === 'ws' && !app.waiting && !app.expiredLocally ? SAFETY_POLL_MS : POLL_MS;
    pollTimer = setTimeout(async () => {
      pollTimer = null;
      await refresh();
      if (app.waiting) await retryApproval();
      schedulePoll();
    }, every);
  }

  let socket = null;
  let socketTimer = null;
  let socketFailures = 0;

  function connect() {
    clearTimeout(socketTimer);
    socketTimer = null;
    if (app.gone || (app.session && FINAL.has(app.session.state)) || !('WebSocket' in window)) return;
    let ws;
    try {
      ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/rpc/ws');
    } catch (_) {
      lostSocket(null);
      return;
    }
    socket = ws;
    const subID = 'sub-' + ++nextID;
    ws.addEventListener('open', () => {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: subID, method: 'client.subscribe', params: { token } }));
    });
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (msg && msg.id === subID) {
        if (msg.result && msg.result.subscription) {
          socketFailures = 0;
          setTransport('ws');
          refresh(); // whatever changed before the subscription started
        } else {
          ws.close();
        }
        return;
      }
      if (msg && msg.method === 'session.changed' && msg.params) changed(msg.params);
    });
    ws.addEventListener('close', () => lostSocket(ws));
  }

  function lostSocket(ws) {
    if (ws && socket !== ws) return;
    socket = null;
    if (app.transport !== 'poll') setTransport('poll');
    schedulePoll();
    if (app.gone || (app.session && FINAL.has(app.session.state))) return;
    const delay = Math.min(60000, 2000 * 2 ** Math.min(socketFailures++, 5));
    socketTimer = setTimeout(connect, delay);
  }

  function stopLive() {
    clearTimeout(pollTimer);
    clearTimeout(socketTimer);
    pollTimer = socketTimer = null;
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
  }

  function changed(p) {
    if (typeof p.version === 'number' && (app.version == null || p.version > app.version)) {
      app.version = p.version;
      app.versionState = p.state;
    }
    if (FINAL.has(p.state)) app.errorCode = p.error_code || null;
    refresh().then(() => {
      if (app.waiting) retryApproval();
    });
  }

  // --------------------------------------------------------------- timer

  let ticker = null;

  function tick() {
    const s = app.session;
    const timer = el('timer');
    const banner = el('warning');
    const live = s && !FINAL.has(s.state) && app.deadline != null && !app.gone;
    if (!live) {
      timer.hidden = true;
      banner.hidden = true;
      clearInterval(ticker);
      ticker = null;
      return;
    }
    if (!ticker) ticker = setInterval(tick, 250);
    const now = performance.now();
    const left = Math.max(0, Math.ceil((app.deadline - now) / 1000));
    const warning = now >= app.warnAt;
    el('timer-value').textContent = clock(left);
    el('timer-value').setAttribute('datetime', 'PT' + left + 'S');
    timer.hidden = false;
    timer.classList.toggle('is-warning', warning);
    if (left <= 0 && !app.expiredLocally) {
      app.expiredLocally = true;
      render();
      refresh();
    }
    banner.hidden = !warning || app.expiredLocally;
    if (!banner.hidden) el('warning-left').textContent = clock(left);
    if (app.expiredLocally) timer.hidden = true;
  }

  // ------------------------------------------------------------ screens

  // screen returns what the card shows now: a key (the card is rebuilt
  // only when it changes) and a function that builds it.
  function screen() {
    const s = app.session;
    if (app.gone) return { key: 'gone', build: buildGone };
    if (!s) return { key: 'loading', build: () => [h('div', { class: 'spinner', 'aria-hidden': 'true' }), h('h1', { tabindex: '-1', text: 'Loading your payment…' })] };
    if (FINAL.has(s.state)) {
      const code = app.errorCode || (s.state === 10 && app.expiredLocally ? 'expired_session' : null);
      return { key: 'final:' + s.state + ':' + code, build: () => buildFinal(s, code) };
    }
    if (app.expiredLocally) return { key: 'expired', build: () => buildExpired(s) };
    if (app.waiting && s.state === 4) return { key: 'approval', build: () => buildApproval(s) };
    return { key: 'state:' + s.state + ':' + app.confirmCancel, build: () => buildStep(s) };
  }

  let rendered = false;

  function render() {
    const s = app.session;
    if (s) renderSummary(s);
    const scr = screen();
    body.dataset.state = s ? String(s.state) : '';
    body.dataset.screen = scr.key.split(':')[0];
    if (scr.key !== app.screenKey && !(app.busy && scr.key.startsWith('state:'))) {
      const hadFocus = el('screen').contains(document.activeElement);
      app.screenKey = scr.key;
      el('screen').replaceChildren(...scr.build().filter(Boolean));
      el('screen').className = 'screen' + (scr.key.startsWith('final') || scr.key === 'expired' || scr.key === 'approval' || scr.key === 'gone' ? ' outcome' : '');
      // Move focus to the new step's heading, so keyboard and screen reader
      // users land on it; not on the first paint.
      if (rendered || hadFocus) {
        const h1 = el('screen').querySelector('h1');
        if (h1) h1.focus({ preventScroll: false });
      }
      rendered = true;
      if (scr.key.startsWith('final')) startRedirect(s);
    }
    body.classList.remove('is-loading');
    syncBusy();
  }

  function syncBusy() {
    const off = app.busy || app.expiredLocally;
    for (const b of el('screen').querySelectorAll('button[data-move]')) b.disabled = off;
    el('main').setAttribute('aria-busy', app.busy ? 'true' : 'false');
  }

  function renderSummary(s) {
    const info = typeInfo(s.type);
    const brand = brandOf(s);
    el('brand-name').textContent = brand;
    el('brand-mark').textContent = (brand.trim()[0] || 's');
    el('summary-kind').textContent = info.kind;
    const amount = money(s);
    el('amount').hidden = !amount;
    el('amount').textContent = amount;
    el('amount').setAttribute('lang', localeOf(s));
    el('summary-to').textContent = s.type === 'withdrawal' ? 'from ' + brand : s.type === 'authentication' || s.type === 'bank_account_selection' ? 'for ' + brand : 'to ' + brand;
    const total = Math.max(1, s.total_steps || 1);
    const cur = Math.min(total, Math.max(0, s.current_step || 0));
    el('progress').max = total;
    el('progress').value = cur;
    el('progress-text').textContent = cur >= total ? 'All ' + total + ' steps done' : cur + ' of ' + total + ' steps done';
    document.title = (amount ? amount + ' · ' : '') + info.kind + ' · ' + brand;

    // A final session that did not complete shows where it stopped: the
    // furthest state it reached.
    const stopped = s.state === 10 || s.state === 11;
    const path = PATHS[s.type] || PATHS.deposit;
    const where = stopped ? path[Math.min(cur, path.length - 1)] : s.state;
    const at = info.steps.findIndex(([, states]) => states.includes(where));
    const items = info.steps.map(([name, states], i) => {
      const done = s.state === 12 || (at >= 0 && i < at);
      const current = !FINAL.has(s.state) && i === at;
      const halted = stopped && i === at;
      const note = done ? ' (done)' : halted ? ' (stopped here)' : '';
      return h('li', { class: done ? 'is-done' : current ? 'is-current' : halted ? 'is-stopped' : '', 'aria-current': current ? 'step' : null },
        name, note ? h('span', { class: 'visually-hidden', text: note }) : null);
    });
    const steps = el('steps');
    steps.replaceChildren(...items);
  }

  // icon draws one of the outcome icons as inline SVG.
  const ICONS = {
    check: ['M6 12.5l4 4 8-9'],
    cross: ['M7 7l10 10', 'M17 7L7 17'],
    alert: ['M12 7v6', 'M12 17v.01'],
    clock: ['M12 7.5V12l3 2', 'CIRCLE'],
    question: ['M9.5 9.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.5v.4', 'M12 17v.01'],
  };
  const SVG = 'http://www.w3.org/2000/svg';

  function icon(kind, name) {
    const svg = document.createElementNS(SVG, 'svg');
    for (const [k, v] of Object.entries({
      viewBox: '0 0 24 24', width: '36', height: '36', fill: 'none', stroke: 'currentColor',
      'stroke-width': '2.4', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false',
    })) svg.setAttribute(k, v);
    for (const d of ICONS[name]) {
      const shape = document.createElementNS(SVG, d === 'CIRCLE' ? 'circle' : 'path');
      if (d === 'CIRCLE') {
        shape.setAttribute('cx', '12'); shape.setAttribute('cy', '12'); shape.setAttribute('r', '8.5');
      } else {
        shape.setAttribute('d', d);
      }
      svg.append(shape);
    }
    return h('div', { class: 'outcome-icon outcome-icon--' + kind }, svg);
  }

  const heading = (text) => h('h1', { tabindex: '-1', text });
  const lead = (text) => h('p', { class: 'lead', text });

  function moveButton(label, moves, opts = {}) {
    return h('button', {
      type: 'button',
      class: opts.class || 'btn btn-primary',
      'data-move': '1',
      onclick: () => runMoves(moves, opts.busy),
    }, label);
  }

  function abort(code, label) {
    return moveButton(label, [{ state: 10, error_code: code }], { class: 'btn btn-secondary', busy: 'Telling the bank…' });
  }

  function fail(label) {
    return moveButton(label || 'Technical failure', [{ state: 11 }], { class: 'btn btn-secondary', busy: 'Telling the bank…' });
  }

  // simulate is the test bank's panel of other outcomes for a step.
  function simulate(buttons) {
    return h('details', { class: 'simulate' },
      h('summary', {}, 'Test Bank: simulate another outcome'),
      h('div', { class: 'actions' }, buttons));
  }

  function bankHead(title) {
    return h('div', { class: 'bankbox-head' },
      h('span', { class: 'choice-logo', 'aria-hidden': 'true', text: 'TB' }),
      h('div', { class: 'choice-text' },
        h('span', { class: 'choice-title', text: title }),
        h('span', { class: 'choice-sub', text: 'Test Bank · sandbox' })));
  }

  function cancelRow(s) {
    const noun = typeInfo(s.type).noun;
    if (!app.confirmCancel) {
      return h('div', { class: 'cancel-row' },
        h('button', { type: 'button', class: 'btn btn-link', 'data-move': '1', onclick: () => { app.confirmCancel = true; render(); focusIn('[data-cancel-yes]'); } }, 'Cancel ' + noun));
    }
    return h('div', { class: 'cancel-row' },
      h('p', { text: 'Cancel this ' + noun + '?' }),
      h('div', { class: 'actions' },
        h('button', {
          type: 'button', class: 'btn btn-danger', 'data-move': '1', 'data-cancel-yes': '1',
          onclick: () => runMoves([{ state: 10, error_code: 'psu_abandoned_session' }], 'Cancelling…'),
        }, 'Yes, cancel'),
        h('button', { type: 'button', class: 'btn btn-secondary', 'data-move': '1', onclick: () => { app.confirmCancel = false; render(); focusIn('.cancel-row button'); } }, 'No, go on')));
  }

  function focusIn(selector) {
    const n = el('screen').querySelector(selector);
    if (n) n.focus();
  }

  function buildStep(s) {
    const info = typeInfo(s.type);
    const brand = brandOf(s);
    const amount = money(s);
    const pay = isPayment(s.type);
    const parts = [];
    switch (s.state) {
      case 0: {
        const what = pay ? 'pay ' + amount + ' to ' + brand
          : s.type === 'withdrawal' ? 'receive ' + amount + ' from ' + brand
            : s.type === 'authentication' ? 'confirm who you are to ' + brand
              : 'share a bank account with ' + brand;
        parts.push(heading('Choose your bank'),
          lead('You’ll log in to your bank to ' + what + '.'),
          h('ul', { class: 'choices', 'aria-label': 'Banks' },
            h('li', {}, h('button', {
              type: 'button', class: 'choice', 'data-move': '1',
              onclick: () => runMoves([{ state: 1, bank: TEST_BANK }], 'Opening Test Bank…'),
            },
            h('span', { class: 'choice-logo', 'aria-hidden': 'true', text: 'TB' }),
            h('span', { class: 'choice-text' },
              h('span', { class: 'choice-title', text: TEST_BANK.name }),
              h('span', { class: 'choice-sub', text: 'Sandbox bank: try any outcome' }))))));
        break;
      }
      case 1: {
        const next = s.type === 'authentication' ? [{ state: 2 }] : [{ state: 2 }, { state: 3 }];
        parts.push(heading('Log in to Test Bank'),
          lead('This is a test bank: log in as its test user, or pick another outcome to see how it looks.'),
          h('div', { class: 'bankbox' },
            bankHead('Log in with Test ID'),
            h('dl', { class: 'facts' },
              h('dt', { text: 'User' }), h('dd', { text: 'Alex Tester' }),
              h('dt', { text: 'Personal number' }), h('dd', { class: 'mono', text: '19900101-1234' })),
            h('div', { class: 'actions' }, moveButton('Log in', next, { busy: 'Logging in…' })),
            simulate([
              abort('psu_invalid_credentials', 'Wrong login details'),
              abort('psu_logged_into_internet_bank', 'Already logged in elsewhere'),
              abort('psu_disabled_bank_id_extended_use', 'BankID not allowed'),
              abort('generic_bank_error', 'Bank error'),
              fail(),
            ])));
        break;
      }
      case 2: {
        if (s.type === 'authentication') {
          parts.push(heading('Confirm your identity'),
            lead('Test Bank will tell ' + brand + ' that you are Alex Tester.'),
            h('div', { class: 'bankbox' },
              bankHead('Share your identity'),
              h('div', { class: 'actions' }, moveButton('Confirm', [{ state: 12 }], { busy: 'Confirming…' })),
              simulate([abort('psu_not_customer', 'Not the expected person'), abort('generic_bank_error', 'Bank error'), fail()])));
        } else {
          parts.push(heading('You’re logged in'),
            lead('Next, choose the account to use.'),
            h('div', { class: 'actions' }, moveButton('Choose an account', [{ state: 3 }], { busy: 'Fetching your accounts…' })));
        }
        break;
      }
      case 3: {
        const verb = pay ? 'pay from' : s.type === 'withdrawal' ? 'receive the money on' : 'share';
        parts.push(heading('Choose an account'),
          lead('Pick the account to ' + verb + '.'),
          h('ul', { class: 'choices', 'aria-label': 'Accounts' }, TEST_ACCOUNTS.map((a) => h('li', {},
            h('button', {
              type: 'button', class: 'choice', 'data-move': '1',
              'aria-label': a.label + ', ' + a.holder + ', ' + spaced(a.iban),
              onclick: () => {
                app.account = a;
                runMoves([{ state: 4, bank_account: { holder: a.holder, iban: a.iban, bban: a.bban } }], 'Selecting the account…');
              },
            },
            h('span', { class: 'choice-logo choice-logo--account', 'aria-hidden': 'true', text: a.label[0] }),
            h('span', { class: 'choice-text' },
              h('span', { class: 'choice-title', text: a.label + ' · ' + a.holder }),
              h('span', { class: 'choice-sub mono', text: spaced(a.iban) })))))),
          simulate([abort('name_mismatch', 'Name doesn’t match'), abort('psu_configuration_error', 'Account not usable'), abort('generic_bank_error', 'Bank error'), fail()]));
        break;
      }
      case 4: {
        const facts = [];
        if (amount) facts.push(h('dt', { text: 'Amount' }), h('dd', { text: amount }));
        facts.push(h('dt', { text: pay ? 'To' : s.type === 'withdrawal' ? 'From' : 'Shared with' }), h('dd', { text: brand }));
        if (app.account) {
          facts.push(h('dt', { text: 'Account' }), h('dd', { class: 'mono', text: spaced(app.account.iban) }));
        }
        if (pay) {
          parts.push(heading(s.type === 'recurring_payment' ? 'Confirm your recurring payment' : 'Confirm your payment'),
            lead('Check the details, then continue to sign with Test Bank.'),
            h('dl', { class: 'facts' }, facts),
            h('div', { class: 'actions' }, moveButton(amount ? 'Pay ' + amount : 'Continue', [{ state: 5 }, { state: 8 }], { busy: 'Starting the payment…' })),
            simulate([abort('psu_no_funds', 'No funds'), abort('psu_abandoned_session', 'Cancel at the bank'), abort('generic_bank_error', 'Bank error'), fail()]));
        } else {
          const share = s.type === 'bank_account_selection';
          parts.push(heading(share ? 'Share this account' : 'Confirm your payout'),
            lead(share ? brand + ' will see the account’s holder and number.' : brand + ' will send the money to this account.'),
            h('dl', { class: 'facts' }, facts),
            h('div', { class: 'actions' }, moveButton(share ? 'Share account' : 'Confirm payout', [{ state: 12 }], { busy: 'Confirming…' })),
            simulate([abort('psu_abandoned_session', 'Cancel at the bank'), abort('generic_bank_error', 'Bank error'), fail()]));
        }
        break;
      }
      case 5: case 6: case 7: {
        const next = s.state === 6 ? [{ state: 7 }, { state: 8 }] : [{ state: 8 }];
        parts.push(heading(s.state === 5 ? 'Your payment is ready to sign' : 'Waiting for the recipient’s approval'),
          lead('Continue to Test Bank to sign it.'),
          h('div', { class: 'actions' }, moveButton('Continue to signing', next, { busy: 'Opening Test Bank…' })),
          simulate([abort('psu_no_funds', 'No funds'), abort('generic_bank_error', 'Bank error'), fail()]));
        break;
      }
      case 8: {
        parts.push(heading('Sign the payment'),
          lead('Test Bank asks you to approve paying ' + (amount || 'this') + ' to ' + brand + '.'),
          h('div', { class: 'bankbox' },
            bankHead('Sign with Test ID'),
            h('dl', { class: 'facts' },
              amount ? [h('dt', { text: 'Amount' }), h('dd', { text: amount })] : null,
              h('dt', { text: 'Recipient' }), h('dd', { text: brand })),
            h('div', { class: 'actions' }, moveButton('Sign payment', [{ state: 9 }, { state: 12 }], { busy: 'Signing…' })),
            simulate([abort('psu_no_funds', 'No funds'), abort('psu_abandoned_session', 'Cancel signing'), abort('generic_bank_error', 'Bank error'), fail()])));
        break;
      }
      case 9: {
        parts.push(heading('Almost done'),
          lead('Test Bank approved the payment. Finish to complete it.'),
          h('div', { class: 'actions' }, moveButton('Finish', [{ state: 12 }], { busy: 'Finishing…' })));
        break;
      }
      default:
        parts.push(heading(info.kind), lead('This step (' + s.state_name + ') can’t be shown here.'));
    }
    parts.push(cancelRow(s));
    return parts;
  }

  function buildApproval(s) {
    return [
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      heading('Waiting for the merchant’s approval'),
      lead(brandOf(s) + ' needs to approve this ' + typeInfo(s.type).noun + ' before you can sign it. Keep this page open: it continues by itself.'),
      cancelRow(s),
    ];
  }

  function buildExpired(s) {
    return [
      icon('warn', 'clock'),
      heading('Session expired'),
      lead('This ' + typeInfo(s.type).noun + ' session timed out for your security. Nothing was charged. Go back to ' + brandOf(s) + ' to start again.'),
      redirectNote(s),
    ];
  }

  function buildGone() {
    return [
      icon('bad', 'question'),
      heading('This payment link isn’t valid any more'),
      lead('Go back to the shop or service you came from and start again.'),
    ];
  }

  function buildFinal(s, code) {
    const info = typeInfo(s.type);
    const brand = brandOf(s);
    const amount = money(s);
    const Noun = info.noun[0].toUpperCase() + info.noun.slice(1);
    let sign; let title; let text;
    if (s.state === 12) {
      sign = ['ok', 'check'];
      title = info.doneTitle;
      text = s.type === 'deposit' ? 'You paid ' + amount + ' to ' + brand + '.'
        : s.type === 'recurring_payment' ? 'You set up a recurring payment of ' + amount + ' to ' + brand + '.'
          : s.type === 'withdrawal' ? brand + ' is sending ' + amount + ' to your account.'
            : s.type === 'bank_account_selection' ? 'Your account details were shared with ' + brand + '.'
              : 'Your identity was confirmed to ' + brand + '.';
    } else if (s.state === 11) {
      sign = ['bad', 'alert'];
      title = Noun + ' failed';
      text = 'Something went wrong at the bank. Nothing was charged; you can try again from ' + brand + '.';
    } else if (code === 'expired_session') {
      sign = ['warn', 'clock'];
      title = 'Session expired';
      text = 'This ' + info.noun + ' session timed out for your security. Nothing was charged.';
    } else {
      sign = ['bad', 'cross'];
      title = code === 'merchant_rejected' ? Noun + ' declined' : Noun + ' cancelled';
      text = code === 'merchant_rejected' ? brand + ' declined this ' + info.noun + '.'
        : code ? ERROR_WORDS[code] || 'The bank stopped it (' + code + ').' : 'The ' + info.noun + ' was stopped before it was finished.';
    }
    return [
      icon(sign[0], sign[1]),
      heading(title),
      lead(text),
      code && s.state === 10 ? h('p', { class: 'redirect-note' }, 'Reason code: ', h('code', { text: code })) : null,
      redirectNote(s),
    ];
  }

  // --------------------------------------------------------- redirecting

  function redirectTarget() {
    const raw = body.dataset.redirectUri || '';
    if (!raw) return null;
    try {
      const u = new URL(raw, location.href);
      return u.protocol === 'https:' || u.protocol === 'http:' ? u : null;
    } catch (_) {
      return null;
    }
  }

  function redirectNote(s) {
    const u = redirectTarget();
    const brand = brandOf(s);
    if (!u) return h('p', { class: 'redirect-note', text: 'You can close this window.' });
    return h('div', { class: 'actions' },
      h('p', { class: 'redirect-note', id: 'redirect-note' }, 'Taking you back to ' + brand + '…'),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.assign(u.href) }, 'Return to ' + brand));
  }

  function startRedirect(s) {
    const u = redirectTarget();
    if (!u || app.redirectTimer) return;
    let left = REDIRECT_DELAY_S;
    const note = () => {
      const n = el('redirect-note');
      if (n) n.textContent = 'Taking you back to ' + brandOf(s) + ' in ' + left + ' s…';
    };
    note();
    app.redirectTimer = setInterval(() => {
      left--;
      note();
      if (left <= 0) {
        clearInterval(app.redirectTimer);
        location.assign(u.href);
      }
    }, 1000);
  }

  // --------------------------------------------------------------- start

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && !app.gone) refresh();
  });

  setTransport('poll');
  refresh().then(() => {
    if (!app.gone && !(app.session && FINAL.has(app.session.state))) connect();
  });
  schedulePoll();
})();
