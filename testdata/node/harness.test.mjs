// Tests against one sessiond, with a reset between them and time made to pass.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const SESSIOND = process.env.SESSIOND ?? 'sessiond'; // the binary: go build -o sessiond . in a checkout
const dir = mkdtempSync(path.join(tmpdir(), 'sessiond-'));
let server, url, token, receiver, receiverURL;

async function rpc(method, params = {}) {
  const res = await fetch(`${url}/rpc`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token && { Authorization: `Bearer ${token}` }) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const { result, error } = await res.json();
  if (error) throw new Error(`${method}: ${error.code} ${error.data?.error_name}`);
  return result;
}

before(async () => {
  const ready = path.join(dir, 'ready.json');
  server = spawn(SESSIOND, ['serve', '--sandbox', '--sandbox-delay', '50ms', '--callback-allow-private',
    '--addr', '127.0.0.1:0', '--db', path.join(dir, 'test.db'), '--ready-file', ready,
    '--merchant', 'pk_test:sk_test', '--token-ttl', '8760h'], { stdio: 'ignore' }); // advance_time ages tokens too
  for (let i = 0; i < 500 && !existsSync(ready); i++) await delay(20);
  ({ url } = JSON.parse(readFileSync(ready, 'utf8')));
  ({ access_token: token } = await rpc('merchant.authorize', { public_key: 'pk_test', secret: 'sk_test' }));
  receiver = createServer((req, res) => req.resume().on('end', () => res.end())); // answers 200
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverURL = `http://127.0.0.1:${receiver.address().port}/cb`;
});

after(async () => {
  receiver?.close();
  if (server) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => rpc('sandbox.reset'));

test('a deposit nobody finishes expires after 30 minutes, with its callback', async () => {
  const { id } = await rpc('session.create_deposit', {
    amount: '10.00', country_id: 'se', callbacks: [{ url: receiverURL, session_state: 10 }],
  });
  await rpc('sandbox.advance_time', { seconds: 31 * 60 }); // expiry and its callback run before this answers
  const s = await rpc('session.state', { id });
  assert.equal(s.state, 10);
  assert.equal(s.error_code, 'expired_session');
  const { deliveries } = await rpc('sandbox.deliveries', { session_id: id });
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0].outcome, 'delivered');
  assert.equal(deliveries[0].body.session_state, 10);
  assert.match(deliveries[0].headers['webhook-signature'], /^v1,/);
});

test('a callback failing twice with 503 is delivered at the third attempt', async () => {
  await rpc('sandbox.fail_callbacks', { url_prefix: receiverURL, status: 503, count: 2 });
  const { id } = await rpc('session.create_deposit', {
    amount: '10.00', country_id: 'se', merchant_reference: 'failed',
    callbacks: [{ url: receiverURL, session_state: 11 }],
  });
  let attempts = [];
  for (let i = 0; i < 500 && attempts.length === 0; i++, await delay(20)) {
    ({ deliveries: attempts } = await rpc('sandbox.deliveries', { session_id: id }));
  }
  await rpc('sandbox.advance_time', { seconds: 10 * 60 }); // the first retry
  await rpc('sandbox.advance_time', { seconds: 20 * 60 }); // the second
  ({ deliveries: attempts } = await rpc('sandbox.deliveries', { session_id: id }));
  assert.deepEqual(attempts.map((a) => [a.outcome, a.status_code]), [['failed', 503], ['failed', 503], ['delivered', 200]]);
});
