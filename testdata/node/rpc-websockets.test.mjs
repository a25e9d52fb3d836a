// sessiond driven through rpc-websockets' Client over /rpc/ws: it cannot
// set headers either, so the socket calls merchant.authenticate;
// notifications arrive as events named by their method.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'rpc-websockets';

import { startServer, removeBuild, rpcFetch, PUBLIC_KEY, SECRET } from './server.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  try {
    if (server) await server.stop();
  } finally {
    await removeBuild();
  }
});

async function post(payload, bearer) {
  const res = await rpcFetch(server.rpcUrl, { jsonrpc: '2.0', id: 1, ...payload }, { bearer });
  assert.equal(res.body.error, undefined, JSON.stringify(res.body.error));
  return res.body.result;
}

function open(url) {
  const ws = new Client(url, { autoconnect: true, reconnect: false });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('rpc-websockets: discover, client.*, merchant.authenticate, subscribe and session.changed', async () => {
  const { access_token: bearer } = await post({
    method: 'merchant.authorize', params: { public_key: PUBLIC_KEY, secret: SECRET },
  });
  const created = await post({
    method: 'session.create_deposit', params: { amount: '50.00', country_id: 'se', merchant_reference: 'rpc-websockets' },
  }, bearer);

  const ws = await open(`ws://${server.host}:${server.port}/rpc/ws`);
  try {
    const doc = await ws.call('rpc.discover');
    assert.equal(doc.openrpc, '1.3.2');
    const view = await ws.call('client.get', { token: created.token });
    assert.equal(view.id, created.id);

    await assert.rejects(ws.call('session.get', { id: created.id }), (err) => {
      assert.equal(err.code, -32001);
      assert.equal(err.data.error_name, 'Unauthorized');
      return true;
    });
    assert.equal(await ws.call('merchant.authenticate', { access_token: bearer }), true);
    const s = await ws.call('session.get', { id: created.id });
    assert.equal(s.merchant_reference, 'rpc-websockets');
    await assert.rejects(ws.call('session.get', { id: 'nope' }), (err) => err.code === -32004 && err.data.error_name === 'NotFound');

    const changed = new Promise((resolve) => ws.once('session.changed', resolve));
    const sub = await ws.call('client.subscribe', { token: created.token });
    const moved = await ws.call('client.transition', { token: created.token, state: 1 });
    assert.equal(moved.state, 1);
    let timer;
    const params = await Promise.race([
      changed,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('no session.changed within 10 s')), 10_000); }),
    ]).finally(() => clearTimeout(timer));
    assert.deepEqual(params, {
      subscription: sub.subscription, session_id: created.id, state: 1,
      state_name: 'STATE_AUTHENTICATION_STARTED', version: 2, error_code: null,
    });
  } finally {
    ws.close();
  }
});
