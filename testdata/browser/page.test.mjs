// Browser tests of the hosted payment page (GET /client/<token>): the real
// binary, a real database, Debian's Chromium. Screenshots of every step go
// to artifacts/<test>/<nn-step>.png.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  createDeposit, DESKTOP, heading, launchBrowser, openPage, PHONE, startServer, until,
} from './harness.mjs';

const SEK = (n) => new Intl.NumberFormat('sv', { style: 'currency', currency: 'SEK' }).format(n);
const squash = (s) => s.replace(/\s+/g, ' ').trim();

let browser;
let srv;

before(async () => {
  browser = await launchBrowser();
  srv = await startServer();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function progressMatches(page, id) {
  const s = await srv.merchant('session.get', { id });
  const want = s.current_step >= s.total_steps ? `All ${s.total_steps} steps done` : `${s.current_step} of ${s.total_steps} steps done`;
  await page.locator('#progress-text').filter({ hasText: want }).waitFor({ timeout: 5000 });
  return s;
}

async function headingFocused(page) {
  await page.waitForFunction(() => document.activeElement?.tagName === 'H1', null, { timeout: 5000 });
}

describe('hosted page', () => {
  test('deposit walked to completion by clicking (phone)', async () => {
    const created = await createDeposit(srv);
    const t = await openPage(browser, PHONE, 'deposit-complete');
    const { page } = t;
    try {
      const resp = await page.goto(created.url);
      assert.equal(resp.status(), 200);
      const headers = resp.headers();
      assert.match(headers['content-security-policy'], /default-src 'none'/);
      assert.equal(headers['referrer-policy'], 'no-referrer');

      await heading(page, 'Choose your bank');
      assert.equal(squash(await page.locator('#brand-name').textContent()), 'Nordic Outdoor');
      assert.equal(squash(await page.locator('#amount').textContent()), squash(SEK(125.5)));
      await page.locator('#timer').waitFor({ state: 'visible' });
      assert.match(await page.locator('#timer-value').textContent(), /^(29|30):\d\d$/);
      await progressMatches(page, created.id);
      await t.shot('choose-bank');

      await page.getByRole('button', { name: /Test Bank/ }).click();
      await heading(page, 'Log in to Test Bank');
      await headingFocused(page);
      await progressMatches(page, created.id);
      await t.shot('log-in');

      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await heading(page, 'Choose an account');
      await progressMatches(page, created.id);
      await t.shot('choose-account');

      // Keyboard: focus the first account and press Enter.
      const account = page.getByRole('button', { name: /Everyday account/ });
      await account.focus();
      await page.keyboard.press('Enter');
      await heading(page, 'Confirm your payment');
      await progressMatches(page, created.id);
      await t.shot('confirm');

      await page.getByRole('button', { name: `Pay ${SEK(125.5)}` }).click();
      await heading(page, 'Sign the payment');
      await progressMatches(page, created.id);
      await t.shot('sign');

      await page.getByRole('button', { name: 'Sign payment' }).click();
      await heading(page, 'Payment complete');
      await page.getByText(`You paid ${SEK(125.5)} to Nordic Outdoor.`).waitFor();
      assert.equal(await page.locator('#timer').isVisible(), false, 'the timer is hidden once final');
      await t.shot('complete');

      const s = await progressMatches(page, created.id);
      assert.equal(s.state, 12);
      assert.equal(s.state_name, 'STATE_COMPLETED');
      assert.deepEqual(s.bank, { id: 'testbank', name: 'Test Bank' });
      assert.equal(s.bank_account.iban, 'SE4550000000058398257466');
      assert.equal(s.current_step, s.total_steps);
      assert.ok(s.transaction_id, 'a deposit transaction was created');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('abort at the test bank: no funds (desktop)', async () => {
    const created = await createDeposit(srv, { amount: 49.9, currency_id: 'eur', country_id: 'de', locale: 'de-DE', brand_name: 'Bergladen' });
    const t = await openPage(browser, DESKTOP, 'abort-no-funds');
    const { page } = t;
    try {
      await page.goto(created.url);
      await heading(page, 'Choose your bank');
      const eur = new Intl.NumberFormat('de-DE', { style: 'currency', currency: 'EUR' }).format(49.9);
      assert.equal(squash(await page.locator('#amount').textContent()), squash(eur));
      await t.shot('choose-bank');
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await heading(page, 'Log in to Test Bank');
      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await heading(page, 'Choose an account');
      await page.getByRole('button', { name: /Savings account/ }).click();
      await heading(page, 'Confirm your payment');
      await page.getByText('Test Bank: simulate another outcome').click();
      await t.shot('simulate-open');

      await page.getByRole('button', { name: 'No funds' }).click();
      await heading(page, 'Payment cancelled');
      await page.getByText('There isn’t enough money in the account to make this payment.').waitFor();
      await page.locator('code', { hasText: 'psu_no_funds' }).waitFor();
      await t.shot('cancelled');

      const s = await srv.merchant('session.get', { id: created.id });
      assert.equal(s.state, 10);
      assert.equal(s.error_code, 'psu_no_funds');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('a change made over RPC shows up by itself (WebSocket)', async () => {
    await followsRemoteChanges('remote-change-websocket', false);
  });

  test('a change made over RPC shows up by itself (polling, socket refused)', async () => {
    await followsRemoteChanges('remote-change-polling', true);
  });

  test('approval required: waits for the merchant, then goes on (phone)', async () => {
    const created = await createDeposit(srv, { approval_required: true });
    const t = await openPage(browser, PHONE, 'approval');
    const { page } = t;
    try {
      await page.goto(created.url);
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await page.getByRole('button', { name: /Everyday account/ }).click();
      await heading(page, 'Confirm your payment');
      await page.getByRole('button', { name: /^Pay / }).click();
      await heading(page, 'Waiting for the merchant’s approval');
      await t.shot('waiting');
      assert.equal((await srv.merchant('session.get', { id: created.id })).state, 4);

      await srv.merchant('session.approve', { id: created.id });
      await heading(page, 'Sign the payment', 10000);
      await t.shot('approved');
      const s = await srv.merchant('session.get', { id: created.id });
      assert.equal(s.state, 8);
      assert.equal(s.approval, 'approved');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('version conflict: the page re-reads, says so, and the retry goes through (polling)', async () => {
    // The merchant's approval changes the version but not the state, and
    // client.get shows neither: with the socket refused, the page's version
    // goes stale and its next move meets VersionConflict.
    const created = await createDeposit(srv, { approval_required: true });
    const t = await openPage(browser, PHONE, 'version-conflict');
    const { page } = t;
    try {
      await page.routeWebSocket(/\/rpc\/ws$/, (ws) => ws.close());
      await page.goto(created.url);
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await page.getByRole('button', { name: /Everyday account/ }).click();
      await heading(page, 'Confirm your payment');
      await srv.merchant('session.approve', { id: created.id });

      await page.getByRole('button', { name: /^Pay / }).click();
      await page.getByText('This payment was updated somewhere else').waitFor({ timeout: 5000 });
      await heading(page, 'Confirm your payment');
      await t.shot('conflict');
      assert.equal((await srv.merchant('session.get', { id: created.id })).state, 4);

      await page.getByRole('button', { name: /^Pay / }).click();
      await heading(page, 'Sign the payment');
      await t.shot('retried');
      assert.equal((await srv.merchant('session.get', { id: created.id })).state, 8);
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('withdrawal and authentication flows (desktop)', async () => {
    const t = await openPage(browser, DESKTOP, 'other-types');
    const { page } = t;
    try {
      const w = await srv.merchant('session.create_withdrawal', { amount: 300, country_id: 'no', brand_name: 'Fjord Casino' });
      await page.goto(w.url);
      await heading(page, 'Choose your bank');
      await page.getByText(/receive .* from Fjord Casino/).waitFor();
      assert.equal(squash(await page.locator('#summary-kind').textContent()), 'Payout');
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await page.getByRole('button', { name: /Savings account/ }).click();
      await heading(page, 'Confirm your payout');
      await t.shot('withdrawal-confirm');
      await page.getByRole('button', { name: 'Confirm payout' }).click();
      await heading(page, 'Payout confirmed');
      await t.shot('withdrawal-done');
      let s = await srv.merchant('session.get', { id: w.id });
      assert.equal(s.state, 12);
      assert.ok(s.transaction_id, 'a withdrawal transaction was created');

      const a = await srv.merchant('session.create_authentication', { country_id: 'fi' });
      await page.goto(a.url);
      await heading(page, 'Choose your bank');
      assert.equal(await page.locator('#amount').isVisible(), false, 'no amount for an authentication');
      assert.equal(squash(await page.locator('#brand-name').textContent()), 'sessiond');
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await page.getByRole('button', { name: 'Log in', exact: true }).click();
      await heading(page, 'Confirm your identity');
      await t.shot('authentication-confirm');
      await page.getByRole('button', { name: 'Confirm', exact: true }).click();
      await heading(page, 'Identity confirmed');
      s = await srv.merchant('session.get', { id: a.id });
      assert.equal(s.state, 12);
      assert.ok(s.customer_id);
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('redirect_uri is followed on a final state, without a referrer (desktop)', async () => {
    const hits = [];
    const shop = http.createServer((req, res) => {
      hits.push({ url: req.url, referer: req.headers.referer });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Shop</title><h1>Back at the shop</h1>');
    });
    await new Promise((r) => shop.listen(0, '127.0.0.1', r));
    const back = `http://127.0.0.1:${shop.address().port}/return?order=42`;
    const created = await createDeposit(srv, { redirect_uri: back });
    const t = await openPage(browser, DESKTOP, 'redirect');
    const { page } = t;
    try {
      await page.goto(created.url);
      await heading(page, 'Choose your bank');
      assert.equal(await page.locator('body').getAttribute('data-redirect-uri'), back);
      await page.getByRole('button', { name: 'Cancel payment' }).click();
      await page.getByRole('button', { name: 'Yes, cancel' }).click();
      await heading(page, 'Payment cancelled');
      await page.getByText(/Taking you back to Nordic Outdoor/).waitFor();
      await t.shot('final-before-redirect');
      await t.check();

      await page.waitForURL(back, { timeout: 10000 });
      await page.getByRole('heading', { name: 'Back at the shop' }).waitFor();
      await t.shot('at-the-shop');
      const returns = hits.filter((h) => h.url.startsWith('/return')); // not /favicon.ico
      assert.deepEqual(returns.map((h) => h.url), ['/return?order=42']);
      assert.equal(returns[0].referer, undefined, 'the page URL (with the token) leaked as Referer');
      const s = await srv.merchant('session.get', { id: created.id });
      assert.equal(s.state, 10);
      assert.equal(s.error_code, 'psu_abandoned_session');
    } finally {
      await t.close();
      shop.close();
    }
  });

  test('unknown token: the 404 page (phone and desktop)', async () => {
    for (const [name, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
      const t = await openPage(browser, viewport, `not-found-${name}`);
      try {
        const resp = await t.page.goto(`${srv.base}/client/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`);
        assert.equal(resp.status(), 404);
        assert.match(resp.headers()['content-type'], /^text\/html/);
        await heading(t.page, 'This payment link isn’t valid');
        await t.shot('not-found');
        await t.check();
      } finally {
        await t.close();
      }
    }
  });
});

// followsRemoteChanges opens the page, moves the session from Node with
// client.transition (as another window of the end user would), and checks
// that the page follows by itself; with blockSocket the WebSocket is
// refused, so only polling can tell it.
async function followsRemoteChanges(name, blockSocket) {
  const created = await createDeposit(srv, { amount: 10, brand_name: 'Remote Shop' });
  const t = await openPage(browser, DESKTOP, name);
  const { page } = t;
  try {
    if (blockSocket) await page.routeWebSocket(/\/rpc\/ws$/, (ws) => ws.close());
    await page.goto(created.url);
    await heading(page, 'Choose your bank');
    const transport = blockSocket ? 'poll' : 'ws';
    await page.locator(`body[data-transport="${transport}"]`).waitFor({ state: 'attached', timeout: 5000 });
    await t.shot('choose-bank');

    const token = created.token;
    let r = await srv.rpc('client.transition', { token, state: 1, bank: { id: 'testbank', name: 'Test Bank' } });
    assert.equal(r.state, 1);
    await heading(page, 'Log in to Test Bank', 5000);
    await t.shot('moved-elsewhere-to-login');

    // The page goes on from the state it was told about; its version must
    // not be stale.
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    await heading(page, 'Choose an account');
    await t.shot('logged-in-on-page');

    r = await srv.rpc('client.transition', { token, state: 10, error_code: 'psu_abandoned_session' });
    assert.equal(r.state, 10);
    await heading(page, 'Payment cancelled', 5000);
    await t.shot('cancelled-elsewhere');
    const s = await srv.merchant('session.get', { id: created.id });
    assert.equal(s.state, 10);
    if (!blockSocket) {
      // The notification carries the error code, so the reason is in words.
      await page.getByText('The session was cancelled before it was finished.').waitFor({ timeout: 5000 });
    }
    await t.check();
  } finally {
    await t.close();
  }
}

describe('session expiry', () => {
  let short;
  before(async () => {
    short = await startServer(['--session-ttl', '8s', '--session-warning', '5s']);
  });
  after(async () => {
    await short?.stop();
  });

  test('warning, then the expired screen (phone)', async () => {
    const created = await createDeposit(short);
    const t = await openPage(browser, PHONE, 'expiry');
    const { page } = t;
    try {
      await page.goto(created.url);
      await heading(page, 'Choose your bank');
      await page.locator('#timer').waitFor({ state: 'visible' });
      await t.shot('counting-down');

      await page.getByText('Your session is about to expire.').waitFor({ state: 'visible', timeout: 8000 });
      await page.locator('#timer.is-warning').waitFor({ timeout: 2000 });
      await t.shot('warning');

      await heading(page, 'Session expired', 12000);
      assert.equal(await page.getByText('Your session is about to expire.').isVisible(), false);
      await t.shot('expired');

      const s = await until(async () => {
        const v = await short.merchant('session.get', { id: created.id });
        return v.state === 10 && v;
      }, 10000, 'the server to expire the session');
      assert.equal(s.error_code, 'expired_session');
      // The page re-read the session and still says so.
      await page.locator('body[data-state="10"]').waitFor({ state: 'attached', timeout: 5000 });
      await heading(page, 'Session expired');
      await t.shot('expired-final');
      await t.check();
    } finally {
      await t.close();
    }
  });
});
