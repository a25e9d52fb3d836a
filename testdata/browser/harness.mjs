// Test harness for the hosted page: builds the sessiond binary, runs it on
// a free port with a temporary database, talks JSON-RPC to it, and drives
// Debian's Chromium through playwright-core (no browser is downloaded).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const artifactsDir = path.join(here, 'artifacts');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export const MERCHANT = { public_key: 'pk_web', secret: 'sk_web' };

let buildDir;

// buildBinary builds sessiond once per test process and returns its path.
export function buildBinary() {
  if (!buildDir) {
    buildDir = mkdtempSync(path.join(tmpdir(), 'sessiond-web-bin-'));
    execFileSync('go', ['build', '-o', path.join(buildDir, 'sessiond'), '.'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
    process.on('exit', () => rmSync(buildDir, { recursive: true, force: true }));
  }
  return path.join(buildDir, 'sessiond');
}

// addMerchant runs `sessiond merchant add NAME` on the data file db and
// returns the new merchant's {merchant_id, public_key, secret}.
export function addMerchant(db, name) {
  const out = execFileSync(buildBinary(), ['merchant', 'add', name, '--db', db], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return Object.fromEntries(out.trim().split('\n').map((line) => line.split(/\s+/, 2)));
}

// sessiond runs the binary with args and returns its standard output.
export function sessiond(...args) {
  return execFileSync(buildBinary(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// startServer runs `sessiond serve` on 127.0.0.1:0 and resolves once it
// logs "listening". Call stop() when finished. With opts.prepare(db), the
// data file is prepared first (merchants added), and opts.merchant names
// the credentials merchant() uses instead of pk_web's.
export async function startServer(extraArgs = [], opts = {}) {
  const bin = buildBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiond-web-'));
  const db = path.join(dir, 'x.db');
  const creds = opts.prepare ? opts.prepare(db) : MERCHANT;
  const args = ['serve', '--addr', '127.0.0.1:0', '--db', db, '--log-format', 'json', ...extraArgs];
  if (!opts.prepare) args.push('--merchant', `${MERCHANT.public_key}:${MERCHANT.secret}`);
  const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = [];
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sessiond did not log "listening" within 20 s:\n' + logs.join('\n'))), 20000);
    readline.createInterface({ input: proc.stderr }).on('line', (line) => {
      logs.push(line);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch (_) {
        return;
      }
      if (entry.message === 'listening' && entry.addr) {
        clearTimeout(timer);
        resolve(entry.addr);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`sessiond exited (${code ?? signal}) before listening:\n${logs.join('\n')}`));
    });
  });

  const base = `http://${addr}`;
  let bearer;

  async function call(method, params = {}, token) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`${base}/rpc`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    assert.equal(res.status, 200, `${method}: HTTP ${res.status}`);
    return res.json();
  }

  return {
    base,
    logs,
    db,
    creds,
    // rpc calls a method and returns its result; it throws on an error.
    async rpc(method, params = {}) {
      const msg = await call(method, params);
      if (msg.error) throw Object.assign(new Error(`${method}: ${JSON.stringify(msg.error)}`), { rpcError: msg.error });
      return msg.result;
    },
    // merchant calls a merchant method with the bearer of pk_web.
    async merchant(method, params = {}) {
      if (!bearer) {
        const auth = await call('merchant.authorize', { public_key: creds.public_key, secret: creds.secret });
        assert.ok(auth.result, `merchant.authorize: ${JSON.stringify(auth.error)}`);
        bearer = auth.result.access_token;
      }
      const msg = await call(method, params, bearer);
      if (msg.error) throw Object.assign(new Error(`${method}: ${JSON.stringify(msg.error)}`), { rpcError: msg.error });
      return msg.result;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const { code, signal } = await exited;
      rmSync(dir, { recursive: true, force: true });
      assert.equal(code, 0, `sessiond exited with ${code ?? signal}`);
    },
  };
}

// launchBrowser starts Debian's Chromium headless.
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// openPage opens a page of the given viewport that records Content
// Security Policy violations and uncaught errors; call check() at the end.
export async function openPage(browser, viewport, name, locale = 'en-GB') {
  // A phone is a touch screen, whose pointer does not hover.
  const phone = viewport.width < 800;
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, locale, isMobile: phone, hasTouch: phone });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content[- ]Security[- ]Policy/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  // Init scripts run whatever the CSP says: they are the harness's, not the page's.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const dir = path.join(artifactsDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let n = 0;

  return {
    page,
    context,
    // shot saves a screenshot as artifacts/<name>/<nn-step>.png, then
    // audits the page as it stands: no serious or critical axe-core
    // violation, nothing wider than the viewport. Pass { audit: false }
    // for a page that is not sessiond's (a shop the test runs).
    async shot(step, { audit = true } = {}) {
      n++;
      // A full-page screenshot re-emulates the screen, under which a phone
      // context briefly hovers: keep the pointer off the page.
      await page.mouse.move(0, 0);
      await page.screenshot({ path: path.join(dir, `${String(n).padStart(2, '0')}-${step}.png`), fullPage: true, animations: 'disabled' });
      if (audit) {
        assert.deepEqual(await axe(page), [], `axe at ${name}/${step}`);
        assert.deepEqual(await overflow(page), [], `horizontal overflow at ${name}/${step}`);
      }
    },
    async check() {
      let csp = [];
      try {
        csp = await page.evaluate(() => window.__cspViolations || []);
      } catch (_) { /* the page navigated away */ }
      assert.deepEqual([...problems, ...csp], [], 'CSP violations or uncaught errors in the page');
    },
    close: () => context.close(),
  };
}

// heading waits for the card's heading to read text.
export async function heading(page, text, timeout = 10000) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor({ state: 'visible', timeout });
}

// until calls fn until it returns a truthy value, or fails after timeout.
export async function until(fn, timeout = 10000, what = 'condition') {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// createDeposit creates a deposit session and returns {id, token, url}.
export function createDeposit(srv, params = {}) {
  return srv.merchant('session.create_deposit', { amount: 125.5, country_id: 'se', locale: 'en', brand_name: 'Nordic Outdoor', ...params });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// axe runs axe-core on the page as it is and returns its serious and
// critical violations, one line each. It is evaluated through the
// browser's debugging protocol, which the page's CSP does not govern.
export async function axe(page) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
}

// overflow returns what sticks out of the viewport sideways: the
// document's scroll width if wider than the viewport, and every visible
// element whose box ends right of it or starts left of it.
export function overflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out = [];
    if (document.documentElement.scrollWidth > width) out.push(`document scrollWidth ${document.documentElement.scrollWidth} > ${width}`);
    for (const n of document.body.querySelectorAll('*')) {
      const r = n.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || n.closest('.visually-hidden')) continue;
      if (r.right > width + 0.5 || r.left < -0.5) {
        out.push(`${n.tagName.toLowerCase()}${n.id ? '#' + n.id : ''}.${[...n.classList].join('.')} [${Math.round(r.left)}, ${Math.round(r.right)}] "${(n.textContent || '').trim().slice(0, 40)}"`);
      }
    }
    return out;
  });
}
