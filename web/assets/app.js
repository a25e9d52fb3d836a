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

  // The messages of the page's language, which the server chose from the
  // session's locale and country and put in the page; {name} placeholders,
  // and plural forms chosen with Intl.PluralRules.
  const LANG = document.documentElement.lang || 'en';
  const MESSAGES = (() => {
    try {
      return JSON.parse(el('messages').textContent);
    } catch (_) {
      return {};
    }
  })();
  let plurals;
  try {
    plurals = new Intl.PluralRules(LANG);
  } catch (_) {
    plurals = new Intl.PluralRules('en');
  }

  // t returns message key with vars filled in; a number var n also picks
  // the plural form.
  function t(key, vars) {
    let m = MESSAGES[key];
    if (m == null) return key;
    vars = Object.assign({ bank: currentBank().name }, vars);
    if (typeof m === 'object') m = m[plurals.select(Number(vars && vars.n))] || m.other;
    return String(m).replace(/\{(\w+)\}/g, (all, k) => {
      if (!vars || vars[k] == null) return all;
      return typeof vars[k] === 'number' ? number(vars[k]) : String(vars[k]);
    });
  }
  const has = (key) => Object.prototype.hasOwnProperty.call(MESSAGES, key);

  // The banks of the session's country, and the session's bank
  // (preselected at create, or chosen), which the server put in the page.
  const BANKS = (() => {
    try {
      const d = JSON.parse(el('banks').textContent);
      return { banks: Array.isArray(d.banks) ? d.banks : [], bank: d.bank || null };
    } catch (_) {
      return { banks: [], bank: null };
    }
  })();
  const FALLBACK_BANK = { id: 'testbank', name: 'Test Bank' };
  // currentBank is the bank chosen on this page, else the session's, else
  // the first offered.
  const currentBank = () => app.bank || BANKS.bank || BANKS.banks[0] || FALLBACK_BANK;
  const initials = (name) => String(name).split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
  // chooseBank moves to the bank's login.
  function chooseBank(b) {
    app.bank = { id: b.id, name: b.name };
    runMoves([{ state: 1, bank: app.bank }], t('busy.opening'));
  }
  const TEST_ACCOUNTS = [
    { label: 'account.everyday', holder: 'Alex Tester', iban: 'SE4550000000058398257466', bban: '50000000058398257466' },
    { label: 'account.savings', holder: 'Alex Tester', iban: 'SE7280000810340009783242', bban: '80000810340009783242' },
  ];

  // Each session type's group (which words the page uses for it) and its
  // steps as the stepper shows them: a message key and the states the
  // step covers. Completed (12) is past the last step.
  const TYPES = {
    deposit: { group: 'pay', steps: [['bank', [0]], ['login', [1, 2]], ['account', [3]], ['sign', [4, 5, 6, 7, 8, 9]]] },
    recurring_payment: { group: 'pay', steps: [['bank', [0]], ['login', [1, 2]], ['account', [3]], ['sign', [4, 5, 6, 7, 8, 9]]] },
    withdrawal: { group: 'payout', steps: [['bank', [0]], ['login', [1, 2]], ['account', [3]], ['confirm', [4]]] },
    bank_account_selection: { group: 'share', steps: [['bank', [0]], ['login', [1, 2]], ['account', [3]], ['confirm', [4]]] },
    authentication: { group: 'auth', steps: [['bank', [0]], ['login', [1]], ['confirm', [2]]] },
  };
  const typeOf = (s) => (s && TYPES[s.type] ? s.type : 'deposit');
  const typeInfo = (s) => TYPES[typeOf(s)];
  const kindOf = (s) => t('kind.' + typeOf(s));

  // The states that count as steps, by type (API.md section 3): the
  // session's current_step is an index into this.
  const PATHS = {
    deposit: [0, 1, 2, 3, 4, 5, 8, 9, 12],
    recurring_payment: [0, 1, 2, 3, 4, 5, 8, 9, 12],
    withdrawal: [0, 1, 2, 3, 4, 12],
    bank_account_selection: [0, 1, 2, 3, 4, 12],
    authentication: [0, 1, 2, 12],
  };
  const isPayment = (s) => typeInfo(s).group === 'pay';

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
    bank: null, // the bank chosen on this page
    preselectTried: false, // a preselected bank is opened once, on its own
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

  // formatLocale is the locale of numbers and dates: the session's own
  // locale if it is of the page's language, else the page's language in
  // the session's country (so that "sv" in Finland is sv-FI).
  let fmtLocale = LANG;
  function setFormatLocale(s) {
    const canon = (tag) => {
      try {
        return Intl.getCanonicalLocales(tag)[0] || null;
      } catch (_) {
        return null;
      }
    };
    const own = s.locale ? canon(String(s.locale).replace(/_/g, '-')) : null;
    const lang = own ? own.split('-')[0].replace(/^(no|nn)$/, 'nb') : null;
    const country = String(s.country_id || '').toUpperCase();
    fmtLocale = (lang === LANG && own) || (/^[A-Z]{2}$/.test(country) && canon(LANG + '-' + country)) || LANG;
  }

  function number(n) {
    try {
      return new Intl.NumberFormat(fmtLocale).format(n);
    } catch (_) {
      return String(n);
    }
  }

  function money(s) {
    if (s.amount == null || !s.currency_id) return '';
    const opts = { style: 'currency', currency: String(s.currency_id).toUpperCase() };
    for (const loc of [fmtLocale, LANG]) {
      try {
        return new Intl.NumberFormat(loc, opts).format(Number(s.amount));
      } catch (_) { /* try the next locale */ }
    }
    return Number(s.amount).toFixed(2) + ' ' + opts.currency;
  }

  function dateTime(unixSeconds) {
    const d = new Date(unixSeconds * 1000);
    try {
      return new Intl.DateTimeFormat(fmtLocale, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
    } catch (_) {
      return d.toISOString();
    }
  }

  // The payee is who the end user deals with: the brand the merchant gave
  // the session, else the merchant's name.
  const payeeOf = (s) => (s && (s.brand_name || s.merchant_name)) || body.dataset.payee || '';

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

  // iban shows an IBAN in groups of four that never break inside.
  function iban(number, cls) {
    const groups = spaced(number).split(' ');
    return h('span', { class: 'iban mono' + (cls ? ' ' + cls : '') },
      groups.flatMap((g, i) => [i ? ' ' : null, h('span', { class: 'iban-group', text: g })]));
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
    for (const c of children.flat(Infinity)) {
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
    setStatus(busyText || t('busy.wait'));
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
      setStatus(t('status.offline'), 'error');
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
        setStatus(t('status.conflict'), 'warn');
        return;
      case 'InvalidStateTransition':
        app.version = null;
        await refresh();
        setStatus(t('status.moved'), 'warn');
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
        setStatus(t('status.rate_limited'), 'error');
        return;
      default:
        setStatus(t('status.error', { code: e.errorName || e.code }), 'error');
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
        await runMoves(rest, t('busy.approved'));
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
            setStatus(t('status.retrying'), 'warn');
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
    if (s.type_name) s.type = s.type_name; // type is a number on the wire; the page goes by name
    app.session = s;
    setFormatLocale(s);
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
    if (!banner.hidden) el('warning-text').textContent = t('warning.text', { time: clock(left) });
    if (app.expiredLocally) timer.hidden = true;
  }

  // ------------------------------------------------------------ screens

  // screen returns what the card shows now: a key (the card is rebuilt
  // only when it changes) and a function that builds it.
  function screen() {
    const s = app.session;
    if (app.gone) return { key: 'gone', build: buildGone };
    if (!s) return { key: 'loading', build: () => [h('div', { class: 'spinner', 'aria-hidden': 'true' }), heading(t('loading'))] };
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

  // progress is the one model of how far the session is, which the bar,
  // its text and the stepper all show: the type's steps, how many are done
  // and which one the session is at (or stopped at).
  function progress(s) {
    const steps = typeInfo(s).steps;
    const total = steps.length;
    const complete = s.state === 12;
    const stopped = s.state === 10 || s.state === 11;
    // A final session that did not complete shows where it stopped: the
    // furthest state it reached.
    const path = PATHS[typeOf(s)];
    const where = stopped ? path[Math.min(Math.max(0, s.current_step || 0), path.length - 1)] : s.state;
    let at = steps.findIndex(([, states]) => states.includes(where));
    if (complete) at = total;
    if (at < 0) at = 0;
    let text;
    if (complete) text = t('progress.done', { n: total });
    else if (stopped) text = t('progress.stopped', { n: at + 1, total });
    else text = t('progress.step', { n: at + 1, total });
    return { names: steps.map(([key]) => t('step.' + key)), total, done: at, at, complete, stopped, text };
  }

  function toPayee(s) {
    const g = typeInfo(s).group;
    return t(g === 'payout' ? 'summary.from' : g === 'pay' ? 'summary.to' : 'summary.for', { payee: payeeOf(s) });
  }

  function renderSummary(s) {
    const payee = payeeOf(s);
    el('brand-name').textContent = payee;
    el('brand-mark').textContent = payee.trim().charAt(0);
    el('summary-kind').textContent = kindOf(s);
    const amount = money(s);
    el('amount').hidden = !amount;
    el('amount').textContent = amount;
    el('summary-to').textContent = payee ? toPayee(s) : '';
    document.title = [amount, kindOf(s), payee].filter(Boolean).join(' · ');

    const p = progress(s);
    el('progress').max = p.total;
    el('progress').value = p.done;
    el('progress-text').textContent = p.text;
    const items = p.names.map((name, i) => {
      const done = i < p.done;
      const current = !FINAL.has(s.state) && i === p.at;
      const halted = p.stopped && i === p.at;
      const note = done ? t('a11y.done') : halted ? t('a11y.stopped') : '';
      return h('li', { class: done ? 'is-done' : current ? 'is-current' : halted ? 'is-stopped' : '', 'aria-current': current ? 'step' : null },
        name, note ? h('span', { class: 'visually-hidden', text: ' (' + note + ')' }) : null);
    });
    el('steps').replaceChildren(...items);
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

  // abort is a test bank button that aborts the session with code.
  function abort(code, label) {
    return moveButton(t(label), [{ state: 10, error_code: code }], { class: 'btn btn-secondary', busy: t('busy.telling') });
  }

  function fail() {
    return moveButton(t('sim.failure'), [{ state: 11 }], { class: 'btn btn-secondary', busy: t('busy.telling') });
  }

  // simulate is the test bank's panel of other outcomes for a step.
  function simulate(buttons) {
    return h('details', { class: 'simulate' },
      h('summary', {}, t('simulate')),
      h('div', { class: 'actions' }, buttons));
  }

  function bankHead(title) {
    return h('div', { class: 'bankbox-head' },
      h('span', { class: 'choice-logo', 'aria-hidden': 'true', text: initials(currentBank().name) }),
      h('div', { class: 'choice-text' },
        h('span', { class: 'choice-title', text: title }),
        h('span', { class: 'choice-sub', text: t('testbank.tag') })));
  }

  function cancelRow() {
    if (!app.confirmCancel) {
      return h('div', { class: 'cancel-row' },
        h('button', { type: 'button', class: 'btn btn-link', 'data-move': '1', onclick: () => { app.confirmCancel = true; render(); focusIn('[data-cancel-yes]'); } }, t('cancel.button')));
    }
    return h('div', { class: 'cancel-row' },
      h('p', { text: t('cancel.question') }),
      h('div', { class: 'actions' },
        h('button', {
          type: 'button', class: 'btn btn-danger', 'data-move': '1', 'data-cancel-yes': '1',
          onclick: () => runMoves([{ state: 10, error_code: 'psu_abandoned_session' }], t('busy.cancelling')),
        }, t('cancel.yes')),
        h('button', { type: 'button', class: 'btn btn-secondary', 'data-move': '1', onclick: () => { app.confirmCancel = false; render(); focusIn('.cancel-row button'); } }, t('cancel.no'))));
  }

  function focusIn(selector) {
    const n = el('screen').querySelector(selector);
    if (n) n.focus();
  }

  // facts is a definition list of [term key, value] pairs; a value may be
  // a node. Pairs without a value are left out.
  function facts(pairs, cls) {
    return h('dl', { class: 'facts' + (cls ? ' ' + cls : '') },
      pairs.filter(([, v]) => v).map(([k, v]) => [h('dt', { text: t(k) }), v instanceof Node ? h('dd', {}, v) : h('dd', { text: v })]));
  }

  // withWhom is the term of the fact that names the payee.
  function withWhom(s) {
    const g = typeInfo(s).group;
    return g === 'pay' ? 'fact.to' : g === 'payout' ? 'fact.from' : g === 'share' ? 'fact.shared_with' : 'fact.for';
  }

  function buildStep(s) {
    const g = typeInfo(s).group;
    const payee = payeeOf(s);
    const amount = money(s);
    const parts = [];
    switch (s.state) {
      case 0: {
        parts.push(heading(t('bank.title')),
          lead(t('bank.lead.' + g, { amount, payee })),
          h('ul', { class: 'choices', 'aria-label': t('banks.label') },
            (BANKS.banks.length ? BANKS.banks : [FALLBACK_BANK]).map((b) => h('li', {}, h('button', {
              type: 'button', class: 'choice', 'data-move': '1', 'data-bank': b.id,
              onclick: () => chooseBank(b),
            },
            h('span', { class: 'choice-logo', 'aria-hidden': 'true', text: initials(b.name) }),
            h('span', { class: 'choice-text' },
              h('span', { class: 'choice-title', text: b.name }),
              h('span', { class: 'choice-sub', text: t('testbank.sub') })))))));
        // A preselected bank opens on its own: the end user goes straight
        // to its login, once; if that fails, the choice stays here.
        if (BANKS.bank && !app.preselectTried) {
          app.preselectTried = true;
          const b = BANKS.bank;
          setTimeout(() => chooseBank(b), 0);
        }
        break;
      }
      case 1: {
        const next = g === 'auth' ? [{ state: 2 }] : [{ state: 2 }, { state: 3 }];
        parts.push(heading(t('login.title')),
          lead(t('login.lead')),
          h('div', { class: 'bankbox' },
            bankHead(t('login.box')),
            facts([['fact.user', 'Alex Tester'], ['fact.personal_number', '19900101-1234']]),
            h('div', { class: 'actions' }, moveButton(t('login.button'), next, { busy: t('busy.login') })),
            simulate([
              abort('psu_invalid_credentials', 'sim.invalid_credentials'),
              abort('psu_logged_into_internet_bank', 'sim.logged_in'),
              abort('psu_disabled_bank_id_extended_use', 'sim.bank_id'),
              abort('generic_bank_error', 'sim.bank_error'),
              fail(),
            ])));
        break;
      }
      case 2: {
        if (g === 'auth') {
          parts.push(heading(t('identity.title')),
            lead(t('identity.lead', { payee, name: 'Alex Tester' })),
            h('div', { class: 'bankbox' },
              bankHead(t('identity.box')),
              h('div', { class: 'actions' }, moveButton(t('button.confirm'), [{ state: 12 }], { busy: t('busy.confirming') })),
              simulate([abort('psu_not_customer', 'sim.not_customer'), abort('generic_bank_error', 'sim.bank_error'), fail()])));
        } else {
          parts.push(heading(t('logged_in.title')),
            lead(t('logged_in.lead')),
            h('div', { class: 'actions' }, moveButton(t('logged_in.button'), [{ state: 3 }], { busy: t('busy.accounts') })));
        }
        break;
      }
      case 3: {
        // The button's accessible name is its visible text: title, holder
        // and number.
        parts.push(heading(t('account.title')),
          lead(t('account.lead.' + g)),
          h('ul', { class: 'choices', 'aria-label': t('accounts.label') }, TEST_ACCOUNTS.map((a) => h('li', {},
            h('button', {
              type: 'button', class: 'choice choice--account', 'data-move': '1',
              onclick: () => {
                app.account = a;
                runMoves([{ state: 4, bank_account: { holder: a.holder, iban: a.iban, bban: a.bban } }], t('busy.account'));
              },
            },
            h('span', { class: 'choice-logo choice-logo--account', 'aria-hidden': 'true', text: t(a.label).charAt(0) }),
            h('span', { class: 'choice-text' },
              h('span', { class: 'choice-title', text: t(a.label) + ' · ' + a.holder }),
              iban(a.iban, 'choice-sub')))))),
          simulate([abort('name_mismatch', 'sim.name_mismatch'), abort('psu_configuration_error', 'sim.configuration'), abort('generic_bank_error', 'sim.bank_error'), fail()]));
        break;
      }
      case 4: {
        const list = facts([['fact.amount', amount], [withWhom(s), payee], ['fact.account', app.account && iban(app.account.iban)]]);
        if (g === 'pay') {
          parts.push(heading(t(s.type === 'recurring_payment' ? 'confirm.title.recurring' : 'confirm.title.pay')),
            lead(t('confirm.lead.pay')),
            list,
            h('div', { class: 'actions' }, moveButton(amount ? t('button.pay', { amount }) : t('button.continue'), [{ state: 5 }, { state: 8 }], { busy: t('busy.starting') })),
            simulate([abort('psu_no_funds', 'sim.no_funds'), abort('psu_abandoned_session', 'sim.cancel'), abort('generic_bank_error', 'sim.bank_error'), fail()]));
        } else {
          const share = g === 'share';
          parts.push(heading(t(share ? 'confirm.title.share' : 'confirm.title.payout')),
            lead(t(share ? 'confirm.lead.share' : 'confirm.lead.payout', { payee })),
            list,
            h('div', { class: 'actions' }, moveButton(t(share ? 'button.share' : 'button.payout'), [{ state: 12 }], { busy: t('busy.confirming') })),
            simulate([abort('psu_abandoned_session', 'sim.cancel'), abort('generic_bank_error', 'sim.bank_error'), fail()]));
        }
        break;
      }
      case 5: case 6: case 7: {
        const next = s.state === 6 ? [{ state: 7 }, { state: 8 }] : [{ state: 8 }];
        parts.push(heading(t(s.state === 5 ? 'ready.title' : 'ready.waiting')),
          lead(t('ready.lead')),
          h('div', { class: 'actions' }, moveButton(t('button.to_signing'), next, { busy: t('busy.opening') })),
          simulate([abort('psu_no_funds', 'sim.no_funds'), abort('generic_bank_error', 'sim.bank_error'), fail()]));
        break;
      }
      case 8: {
        parts.push(heading(t('sign.title')),
          lead(t(amount ? 'sign.lead' : 'sign.lead_no_amount', { amount, payee })),
          h('div', { class: 'bankbox' },
            bankHead(t('sign.box')),
            facts([['fact.amount', amount], ['fact.to', payee]]),
            h('div', { class: 'actions' }, moveButton(t('button.sign'), [{ state: 9 }, { state: 12 }], { busy: t('busy.signing') })),
            simulate([abort('psu_no_funds', 'sim.no_funds'), abort('psu_abandoned_session', 'sim.cancel'), abort('generic_bank_error', 'sim.bank_error'), fail()])));
        break;
      }
      case 9: {
        parts.push(heading(t('almost.title')),
          lead(t('almost.lead')),
          h('div', { class: 'actions' }, moveButton(t('button.finish'), [{ state: 12 }], { busy: t('busy.finishing') })));
        break;
      }
      default:
        parts.push(heading(kindOf(s)), lead(t('unknown.lead', { state: s.state_name })));
    }
    parts.push(cancelRow());
    return parts;
  }

  function buildApproval(s) {
    return [
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      heading(t('approval.title')),
      lead(t('approval.lead', { payee: payeeOf(s) })),
      cancelRow(),
    ];
  }

  function buildExpired(s) {
    return [
      icon('warn', 'clock'),
      heading(t('expired.title')),
      lead(t('expired.lead', { payee: payeeOf(s) })),
      redirectNote(s),
    ];
  }

  function buildGone() {
    return [
      icon('bad', 'question'),
      heading(t('gone.title')),
      lead(t('gone.lead')),
    ];
  }

  // reason is an abort's error code in the end user's words.
  const reason = (code) => t(has('reason.' + code) ? 'reason.' + code : 'reason.other');

  // receipt is what a completed session leaves the end user: what, to
  // whom, when, and the references to quote.
  function receipt(s) {
    return h('section', { class: 'receipt', 'aria-labelledby': 'receipt-title' },
      h('h2', { id: 'receipt-title', text: t('receipt.title') }),
      facts([
        ['fact.amount', money(s)],
        [withWhom(s), payeeOf(s)],
        ['fact.date', dateTime(s.completed || Date.now() / 1000)],
        ['fact.message', s.message || null],
      ], 'receipt-facts'),
      s.reference != null && s.reference !== '' ? h('p', { class: 'receipt-id' }, t('receipt.id', { id: String(s.reference) })) : null);
  }

  function buildFinal(s, code) {
    const g = typeInfo(s).group;
    const payee = payeeOf(s);
    const amount = money(s);
    let sign; let title; let text;
    if (s.state === 12) {
      sign = ['ok', 'check'];
      title = t('done.title.' + typeOf(s));
      text = t('done.text.' + typeOf(s), { amount, payee });
    } else if (s.state === 11) {
      sign = ['bad', 'alert'];
      title = t('failed.title');
      text = t('failed.text', { payee });
    } else if (code === 'expired_session') {
      sign = ['warn', 'clock'];
      title = t('expired.title');
      text = t('expired.lead', { payee });
    } else if (code === 'merchant_rejected') {
      sign = ['bad', 'cross'];
      title = t('declined.title');
      text = t('declined.text', { payee });
    } else {
      sign = ['bad', 'cross'];
      title = t('cancelled.title.' + g);
      text = code ? reason(code) : t('cancelled.text');
    }
    return [
      icon(sign[0], sign[1]),
      heading(title),
      lead(text),
      s.state === 12 ? receipt(s) : null,
      code && s.state === 10 ? h('p', { class: 'details' }, t('details'), ' ', h('code', { text: code })) : null,
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
    const payee = payeeOf(s);
    if (!u) return h('p', { class: 'redirect-note', text: t('redirect.close') });
    return h('div', { class: 'actions' },
      h('p', { class: 'redirect-note', id: 'redirect-note' }, t('redirect.going', { payee })),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.assign(u.href) }, t('redirect.button', { payee })));
  }

  function startRedirect(s) {
    const u = redirectTarget();
    if (!u || app.redirectTimer) return;
    let left = REDIRECT_DELAY_S;
    const note = () => {
      const n = el('redirect-note');
      if (n) n.textContent = t('redirect.in', { payee: payeeOf(s), n: left });
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
