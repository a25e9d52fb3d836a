// Browser tests of the hosted payment page (GET /client/<token>): the real
// binary, a real database, Debian's Chromium. Screenshots of every step go
// to artifacts/<test>/<nn-step>.png.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  addMerchant, createDeposit, DESKTOP, heading, launchBrowser, openPage, PHONE, sessiond, startServer, until,
} from './harness.mjs';

const money = (locale, currency, n) => new Intl.NumberFormat(locale, { style: 'currency', currency }).format(n);
const SEK = (n) => money('en', 'SEK', n);
const squash = (s) => s.replace(/\s+/g, ' ').trim();
const SMALL = { width: 320, height: 640 };

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

// progressAgrees checks that the bar, its text and the stepper show one
// model: as many steps in the list as the bar's maximum, as many of them
// done as its value, and the text naming the same step and total.
async function progressAgrees(page) {
  const p = await page.evaluate(() => {
    const bar = document.getElementById('progress');
    const items = [...document.querySelectorAll('#steps li')];
    return {
      max: bar.max, value: bar.value, text: document.getElementById('progress-text').textContent,
      items: items.length, done: items.filter((li) => li.classList.contains('is-done')).length,
      current: items.findIndex((li) => li.getAttribute('aria-current') === 'step'),
    };
  });
  assert.equal(p.items, p.max, `stepper has ${p.items} steps, the bar ${p.max}: ${JSON.stringify(p)}`);
  assert.equal(p.done, p.value, `stepper shows ${p.done} done, the bar ${p.value}: ${JSON.stringify(p)}`);
  const numbers = (p.text.match(/\d+/g) || []).map(Number);
  assert.ok(numbers.includes(p.max), `progress text "${p.text}" does not name the ${p.max} steps`);
  if (p.current >= 0) assert.ok(numbers.includes(p.current + 1), `progress text "${p.text}" does not name step ${p.current + 1}`);
  return p;
}

// step checks the page as it stands: a screenshot, no serious or critical
// axe violation, nothing wider than the viewport (t.shot), one progress
// model.
async function step(t, name) {
  await t.shot(name);
  if (await t.page.locator('#steps li').count()) await progressAgrees(t.page);
}

async function headingFocused(page) {
  await page.waitForFunction(() => document.activeElement?.tagName === 'H1', null, { timeout: 5000 });
}

// receipt returns the receipt's facts as {term: value}.
async function receipt(page) {
  const box = page.locator('.receipt');
  await box.waitFor();
  const terms = await box.locator('dt').allTextContents();
  const values = await box.locator('dd').allTextContents();
  return Object.fromEntries(terms.map((k, i) => [squash(k), squash(values[i])]));
}

// What walkDeposit expects and clicks, by language.
const WORDS = {
  en: {
    bank: 'Choose your bank', lead: (amount, payee) => `pay ${amount} to ${payee}`, login: 'Log in to Test Bank', loginButton: 'Log in',
    account: 'Choose an account', everyday: 'Everyday account', confirm: 'Confirm your payment', pay: (amount) => `Pay ${amount}`,
    sign: 'Sign the payment', signButton: 'Sign payment', done: 'Payment complete', paid: (amount, payee) => `You paid ${amount} to ${payee}.`,
    amount: 'Amount', to: 'To', date: 'Date', message: 'Message', receipt: 'Receipt', step: 'Step 1 of 4', allDone: 'All 4 steps done',
  },
  sv: {
    bank: 'Välj din bank', lead: (amount, payee) => `betala ${amount} till ${payee}`, login: 'Logga in på Test Bank', loginButton: 'Logga in',
    account: 'Välj ett konto', everyday: 'Lönekonto', confirm: 'Bekräfta din betalning', pay: (amount) => `Betala ${amount}`,
    sign: 'Signera betalningen', signButton: 'Signera betalningen', done: 'Betalningen är klar', paid: (amount, payee) => `Du har betalat ${amount} till ${payee}.`,
    amount: 'Belopp', to: 'Till', date: 'Datum', message: 'Meddelande', receipt: 'Kvitto', step: 'Steg 1 av 4', allDone: 'Alla 4 steg klara',
  },
  de: {
    bank: 'Wählen Sie Ihre Bank', lead: (amount, payee) => `${amount} an ${payee} zu zahlen`, login: 'Bei Test Bank anmelden', loginButton: 'Anmelden',
    account: 'Wählen Sie ein Konto', everyday: 'Girokonto', confirm: 'Bestätigen Sie Ihre Zahlung', pay: (amount) => `${amount} zahlen`,
    sign: 'Zahlung signieren', signButton: 'Zahlung signieren', done: 'Zahlung abgeschlossen', paid: (amount, payee) => `Sie haben ${amount} an ${payee} gezahlt.`,
    amount: 'Betrag', to: 'An', date: 'Datum', message: 'Mitteilung', receipt: 'Beleg', step: 'Schritt 1 von 4', allDone: 'Alle 4 Schritte erledigt',
  },
};

// walkDeposit walks a deposit from the bank choice to the receipt in the
// language of w, checking each step (step()) and what the page says.
async function walkDeposit(t, created, w, amount, payee) {
  const { page } = t;
  await heading(page, w.bank);
  assert.equal(squash(await page.locator('#brand-name').textContent()), payee);
  assert.equal(squash(await page.locator('#amount').textContent()), squash(amount));
  await page.getByText(w.lead(amount, payee)).waitFor();
  await page.locator('#timer').waitFor({ state: 'visible' });
  assert.match(await page.locator('#timer-value').textContent(), /^(29|30):\d\d$/);
  assert.equal(squash(await page.locator('#progress-text').textContent()), w.step);
  await step(t, 'choose-bank');

  await page.getByRole('button', { name: /Test Bank/ }).click();
  await heading(page, w.login);
  await headingFocused(page);
  await step(t, 'log-in');
  await page.locator('.simulate summary').click();
  await step(t, 'log-in-simulate-open');

  await page.getByRole('button', { name: w.loginButton, exact: true }).click();
  await heading(page, w.account);
  await step(t, 'choose-account');
  // The IBAN never breaks inside a group of four; at 390 px and wider it
  // is on one line.
  const ibanLines = await page.locator('.choice .iban').first().evaluate((n) => {
    const tops = new Set([...n.querySelectorAll('.iban-group')].map((g) => Math.round(g.getBoundingClientRect().top)));
    const groupsWhole = [...n.querySelectorAll('.iban-group')].every((g) => g.getClientRects().length === 1);
    return { lines: tops.size, groupsWhole };
  });
  assert.ok(ibanLines.groupsWhole, 'an IBAN group broke across lines');
  if (page.viewportSize().width >= 390) assert.equal(ibanLines.lines, 1, 'the IBAN wraps');

  // On a touch screen the tap of the step before leaves no hover
  // highlight on the account under the finger.
  if (page.viewportSize().width < 800) {
    const looks = await page.evaluate(() => ({
      hover: matchMedia('(hover: hover)').matches,
      backgrounds: [...document.querySelectorAll('.choice')].map((b) => getComputedStyle(b).backgroundColor),
    }));
    assert.equal(looks.hover, false, 'the phone context hovers');
    assert.equal(new Set(looks.backgrounds).size, 1, `account buttons differ: ${looks.backgrounds}`);
  }

  // Keyboard: focus the first account and press Enter. Its accessible
  // name is its visible text.
  const account = page.getByRole('button', { name: new RegExp(w.everyday) });
  assert.equal(squash(await account.evaluate((n) => n.getAttribute('aria-label') || '')), '', 'the account button has an aria-label');
  await account.focus();
  await page.keyboard.press('Enter');
  await heading(page, w.confirm);
  await step(t, 'confirm');

  await page.getByRole('button', { name: w.pay(amount) }).click();
  await heading(page, w.sign);
  await step(t, 'sign');

  await page.getByRole('button', { name: w.signButton }).click();
  await heading(page, w.done);
  await page.getByText(w.paid(amount, payee)).waitFor();
  assert.equal(await page.locator('#timer').isVisible(), false, 'the timer is hidden once final');
  const r = await receipt(page);
  assert.equal(await page.locator('.receipt h2').textContent(), w.receipt);
  assert.equal(r[w.amount], squash(amount));
  assert.equal(r[w.to], payee);
  assert.ok(r[w.date] && r[w.date].includes(String(new Date().getFullYear())), `receipt date ${r[w.date]}`);
  assert.equal(squash(await page.locator('#progress-text').textContent()), w.allDone);
  await step(t, 'complete');

  const s = await srv.merchant('session.get', { id: created.id });
  const tx = await srv.merchant('transaction.get', { id: s.transaction_id });
  assert.ok(tx.message, 'the transaction has a message');
  assert.equal(r[w.message], tx.message);
  assert.equal(squash(await page.locator('.receipt-id').textContent()), `ID: ${s.reference}`);
  assert.equal(s.state, 12);
  assert.equal(s.state_name, 'STATE_COMPLETED');
  assert.deepEqual(s.bank, { id: 'testbank', name: 'Test Bank' });
  assert.equal(s.bank_account.iban, 'SE4550000000058398257466');
  assert.equal(s.current_step, s.total_steps);
  assert.ok(s.transaction_id, 'a deposit transaction was created');
  const body = await page.locator('body').textContent();
  assert.ok(!/sessiond/i.test(body) && !/sessiond/i.test(await page.title()), 'the page names sessiond');
}

describe('hosted page', () => {
  test('deposit walked to completion by clicking, in English (phone)', async () => {
    const created = await createDeposit(srv);
    const t = await openPage(browser, PHONE, 'deposit-en-phone');
    try {
      const resp = await t.page.goto(created.url);
      assert.equal(resp.status(), 200);
      const headers = resp.headers();
      assert.match(headers['content-security-policy'], /default-src 'none'/);
      assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
      assert.equal(headers['x-frame-options'], 'DENY');
      assert.equal(headers['referrer-policy'], 'no-referrer');
      await walkDeposit(t, created, WORDS.en, SEK(125.5), 'Nordic Outdoor');
      assert.equal(await t.page.locator('html').getAttribute('lang'), 'en');
      assert.equal(await t.page.title(), `${SEK(125.5)} · Payment · Nordic Outdoor`);
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('without bank_id: the banks of the country from bank.list, and the one clicked is the session\'s (desktop)', async () => {
    const { banks } = await srv.merchant('bank.list', { country_id: 'se' });
    assert.ok(banks.length >= 3, `bank.list gives ${banks.length} banks`);
    const created = await createDeposit(srv);
    const t = await openPage(browser, DESKTOP, 'banks-choice');
    try {
      await t.page.goto(created.url);
      await heading(t.page, WORDS.en.bank);
      const offered = t.page.locator('#screen .choices button');
      await until(async () => (await offered.count()) === banks.length, 10000, 'every bank is offered');
      assert.deepEqual((await t.page.locator('#screen .choices .choice-title').allTextContents()).map(squash), banks.map((b) => b.name));
      await step(t, 'choose-bank');
      const pick = banks[1];
      await t.page.getByRole('button', { name: new RegExp(pick.name) }).click();
      await heading(t.page, `Log in to ${pick.name}`);
      const s = await srv.merchant('session.get', { id: created.id });
      assert.equal(s.state, 1);
      assert.deepEqual(s.bank, { id: pick.id, name: pick.name });
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('with bank_id: the page opens on that bank\'s login, and state 1 has it (phone)', async () => {
    const { banks } = await srv.merchant('bank.list', { country_id: 'se' });
    const pre = banks[2];
    const created = await createDeposit(srv, { bank_id: pre.id });
    const t = await openPage(browser, PHONE, 'banks-preselected');
    try {
      await t.page.goto(created.url);
      await heading(t.page, `Log in to ${pre.name}`, 5000);
      await headingFocused(t.page);
      await step(t, 'log-in-preselected');
      const s = await srv.merchant('session.get', { id: created.id });
      assert.equal(s.state, 1);
      assert.deepEqual(s.bank, { id: pre.id, name: pre.name });
      assert.equal(s.bank_id, pre.id);
      // Reloaded on the login, it stays there and still names the bank.
      await t.page.reload();
      await heading(t.page, `Log in to ${pre.name}`, 5000);
      assert.equal((await srv.merchant('session.get', { id: created.id })).state, 1);
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('deposit walked in Swedish (phone, 390 px)', async () => {
    const created = await createDeposit(srv, { amount: 1249.5, locale: 'sv-SE', brand_name: 'Nordic Outdoor' });
    const t = await openPage(browser, PHONE, 'deposit-sv-phone', 'sv-SE');
    try {
      await t.page.goto(created.url);
      await walkDeposit(t, created, WORDS.sv, money('sv-SE', 'SEK', 1249.5), 'Nordic Outdoor');
      assert.equal(await t.page.locator('html').getAttribute('lang'), 'sv');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('deposit walked in German (desktop)', async () => {
    const created = await createDeposit(srv, { amount: 49.9, currency_id: 'eur', country_id: 'de', locale: 'de-DE', brand_name: 'Bergladen' });
    const t = await openPage(browser, DESKTOP, 'deposit-de-desktop', 'de-DE');
    try {
      await t.page.goto(created.url);
      await walkDeposit(t, created, WORDS.de, money('de-DE', 'EUR', 49.9), 'Bergladen');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('a large amount at 320 px, in German: nothing sticks out', async () => {
    const created = await createDeposit(srv, { amount: 999999999.99, currency_id: 'eur', country_id: 'de', locale: 'de-DE', brand_name: 'Bergsportausrüstung Oberammergau GmbH' });
    const t = await openPage(browser, SMALL, 'deposit-de-320', 'de-DE');
    try {
      await t.page.goto(created.url);
      await walkDeposit(t, created, WORDS.de, money('de-DE', 'EUR', 999999999.99), 'Bergsportausrüstung Oberammergau GmbH');
      await t.check();
    } finally {
      await t.close();
    }
  });

  test('abort at the test bank: the reason in German words, the code only as a detail (desktop)', async () => {
    const created = await createDeposit(srv, { amount: 49.9, currency_id: 'eur', country_id: 'de', locale: 'de-DE', brand_name: 'Bergladen' });
    const t = await openPage(browser, DESKTOP, 'abort-no-funds-de', 'de-DE');
    const { page } = t;
    try {
      await page.goto(created.url);
      await heading(page, 'Wählen Sie Ihre Bank');
      assert.equal(squash(await page.locator('#amount').textContent()), squash(money('de-DE', 'EUR', 49.9)));
      await page.getByRole('button', { name: /Test Bank/ }).click();
      await heading(page, 'Bei Test Bank anmelden');
      await page.getByRole('button', { name: 'Anmelden', exact: true }).click();
      await heading(page, 'Wählen Sie ein Konto');
      await page.getByRole('button', { name: /Sparkonto/ }).click();
      await heading(page, 'Bestätigen Sie Ihre Zahlung');
      await page.getByText('Test Bank: ein anderes Ergebnis simulieren').click();
      await step(t, 'simulate-open');

      await page.getByRole('button', { name: 'Keine Deckung' }).click();
      await heading(page, 'Zahlung abgebrochen');
      await page.getByText('Auf dem Konto ist nicht genug Geld für diese Zahlung.').waitFor();
      assert.equal(squash(await page.locator('.details').textContent()), 'Angaben für den Support: psu_no_funds');
      assert.equal(await page.locator('.lead').filter({ hasText: 'psu_' }).count(), 0, 'the code is in the sentence');
      assert.equal(squash(await page.locator('#progress-text').textContent()), 'Abgebrochen bei Schritt 4 von 4');
      await step(t, 'cancelled');

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
      const w = await srv.merchant('session.create_withdrawal', { amount: 300, country_id: 'no', locale: 'en-NO', brand_name: 'Fjord Casino', statement_reference: 'Fjord Casino win 42' });
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
      assert.equal(squash(await page.locator('.receipt dd').last().textContent()), 'Fjord Casino win 42', 'the receipt shows the transaction\'s message');
      assert.match(squash(await page.locator('.receipt-id').textContent()), /^ID: \d+$/);
      await t.shot('withdrawal-done');
      let s = await srv.merchant('session.get', { id: w.id });
      assert.equal(s.state, 12);
      assert.ok(s.transaction_id, 'a withdrawal transaction was created');

      const a = await srv.merchant('session.create_authentication', { country_id: 'fi', locale: 'en' });
      await page.goto(a.url);
      await heading(page, 'Choose your bank');
      assert.equal(await page.locator('#amount').isVisible(), false, 'no amount for an authentication');
      assert.equal(squash(await page.locator('#brand-name').textContent()), 'pk_web', 'the payee is the merchant\'s name');
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
      await page.getByRole('button', { name: 'Cancel', exact: true }).click();
      await page.getByRole('button', { name: 'Yes, cancel' }).click();
      await heading(page, 'Payment cancelled');
      await page.getByText(/Taking you back to Nordic Outdoor/).waitFor();
      await page.getByRole('button', { name: 'Return to Nordic Outdoor' }).waitFor();
      await t.shot('final-before-redirect');
      await t.check();

      await page.waitForURL(back, { timeout: 10000 });
      await page.getByRole('heading', { name: 'Back at the shop' }).waitFor();
      await t.shot('at-the-shop', { audit: false });
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

describe('the payee is the merchant', () => {
  let named;
  before(async () => {
    named = await startServer([], { prepare: (db) => addMerchant(db, 'Nordic Shoes AB') });
  });
  after(async () => {
    await named?.stop();
  });

  test('a session without brand_name names the merchant, in Finnish (phone)', async () => {
    const shop = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Shop</title><h1>Back at the shop</h1>');
    });
    await new Promise((r) => shop.listen(0, '127.0.0.1', r));
    const created = await named.merchant('session.create_deposit', {
      amount: 50, country_id: 'fi', currency_id: 'eur', redirect_uri: `http://127.0.0.1:${shop.address().port}/back`,
    });
    const t = await openPage(browser, PHONE, 'payee-merchant-name', 'fi-FI');
    const { page } = t;
    try {
      await page.goto(created.url);
      await heading(page, 'Valitse pankkisi');
      assert.equal(squash(await page.locator('#brand-name').textContent()), 'Nordic Shoes AB');
      const eur = money('fi-FI', 'EUR', 50);
      assert.equal(await page.title(), `${eur} · Maksu · Nordic Shoes AB`);
      assert.match(squash(await page.locator('#summary-to').textContent()), /Nordic Shoes AB/);
      const got = await named.rpc('client.get', { token: created.token });
      assert.equal(got.merchant_name, 'Nordic Shoes AB');
      assert.equal(got.brand_name, null);
      await step(t, 'choose-bank');

      await page.getByRole('button', { name: 'Peruuta', exact: true }).click();
      await page.getByRole('button', { name: 'Kyllä, peruuta' }).click();
      await heading(page, 'Maksu peruutettu');
      await page.getByRole('button', { name: 'Palaa: Nordic Shoes AB' }).waitFor();
      await step(t, 'cancelled');
      for (const text of [await page.locator('body').textContent(), await page.title()]) {
        assert.ok(!/sessiond/i.test(text), `the page names sessiond: ${text}`);
      }
      await t.check();
    } finally {
      await t.close();
      shop.close();
    }
  });
});

describe('embedding in a merchant page', () => {
  // A shop on another loopback origin (another port) that frames the
  // checkout page it is given as ?src=.
  let shop;
  let shopOrigin;
  let open;
  let closed;
  before(async () => {
    shop = http.createServer((req, res) => {
      const src = new URL(req.url, 'http://x').searchParams.get('src') || '';
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html lang="en"><title>Shop checkout</title><h1>Shop checkout</h1>
<iframe title="Checkout" src="${src.replace(/"/g, '&quot;')}" width="420" height="760"></iframe>`);
    });
    await new Promise((r) => shop.listen(0, '127.0.0.1', r));
    shopOrigin = `http://127.0.0.1:${shop.address().port}`;
    open = await startServer(['--frame-ancestors', shopOrigin]);
    closed = srv;
  });
  after(async () => {
    await open?.stop();
    shop?.close();
  });

  test('allowed with --frame-ancestors: the checkout works inside the frame (desktop)', async () => {
    const created = await createDeposit(open, { locale: 'sv-SE' });
    const t = await openPage(browser, DESKTOP, 'embedded-allowed', 'sv-SE');
    const { page } = t;
    try {
      const resp = await page.request.get(created.url);
      assert.equal(resp.headers()['content-security-policy'].split('; ').pop(), `frame-ancestors ${shopOrigin}`);
      assert.equal(resp.headers()['x-frame-options'], undefined);
      await page.goto(`${shopOrigin}/?src=${encodeURIComponent(created.url)}`);
      const frame = page.frameLocator('iframe');
      await frame.getByRole('heading', { level: 1, name: 'Välj din bank' }).waitFor();
      await frame.getByRole('button', { name: /Test Bank/ }).click();
      await frame.getByRole('heading', { level: 1, name: 'Logga in på Test Bank' }).waitFor();
      await t.shot('framed', { audit: false });
      const s = await open.merchant('session.get', { id: created.id });
      assert.equal(s.state, 1);
    } finally {
      await t.close();
    }
  });

  test('allowed for one merchant, set live with merchant set-frame-ancestors (desktop)', async () => {
    const own = await startServer([], { prepare: (db) => addMerchant(db, 'Nordic Shoes AB') });
    const t = await openPage(browser, DESKTOP, 'embedded-merchant', 'sv-SE');
    const { page } = t;
    try {
      const created = await own.merchant('session.create_deposit', { amount: 50, country_id: 'se', locale: 'sv-SE' });
      let resp = await page.request.get(created.url);
      assert.equal(resp.headers()['x-frame-options'], 'DENY', 'framing allowed before the merchant allowed it');

      // Through the running server's admin socket: no restart.
      const out = sessiond('merchant', 'set-frame-ancestors', own.creds.merchant_id, '--origins', shopOrigin, '--db', own.db);
      assert.match(out, new RegExp(`frame_ancestors +${shopOrigin}`));
      resp = await page.request.get(created.url);
      assert.equal(resp.headers()['content-security-policy'].split('; ').pop(), `frame-ancestors ${shopOrigin}`);
      assert.equal(resp.headers()['x-frame-options'], undefined);
      await page.goto(`${shopOrigin}/?src=${encodeURIComponent(created.url)}`);
      await page.frameLocator('iframe').getByRole('heading', { level: 1, name: 'Välj din bank' }).waitFor();
      await t.shot('framed', { audit: false });

      sessiond('merchant', 'set-frame-ancestors', own.creds.merchant_id, '--origins', '', '--db', own.db);
      resp = await page.request.get(created.url);
      assert.equal(resp.headers()['x-frame-options'], 'DENY', 'still framable after the merchant\'s origins were cleared');
    } finally {
      await t.close();
      await own.stop();
    }
  });

  test('refused by default', async () => {
    const created = await createDeposit(closed);
    const t = await openPage(browser, DESKTOP, 'embedded-refused');
    const { page } = t;
    try {
      await page.goto(`${shopOrigin}/?src=${encodeURIComponent(created.url)}`);
      // The browser replaces a frame it refuses with its error page.
      const frame = await until(async () => page.frames().find((f) => f !== page.mainFrame() && f.url().startsWith('chrome-error:')),
        10000, 'the frame to be refused');
      assert.ok(frame);
      await t.shot('refused', { audit: false });
      assert.equal(await page.frameLocator('iframe').getByRole('heading', { level: 1 }).count(), 0);
    } finally {
      await t.close();
    }
  });
});
