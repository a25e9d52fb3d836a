// sessiond driven through OpenRPC's @open-rpc/client-js, over HTTP and
// WebSocket. client-js sends "params":[] for a call without params, and
// cannot set headers on its WebSocket: the socket calls merchant.authenticate.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, RequestManager, HTTPTransport, WebSocketTransport } from '@open-rpc/client-js';

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

const wsUrl = () => `ws://${server.host}:${server.port}/rpc/ws`;

function httpClient(headers) {
  return new Client(new RequestManager([new HTTPTransport(server.rpcUrl, headers ? { headers } : undefined)]));
}

/** Rejects like client-js does: a JSONRPCError with code and Brite's data. */
async function assertRPCError(promise, code, errorName) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `${err.message} ${JSON.stringify(err.data)}`);
    assert.equal(err.data?.error_name, errorName);
    assert.equal(err.data?.state, 'APPLICATION_ERROR');
    return true;
  });
}

async function accessToken() {
  const res = await rpcFetch(server.rpcUrl, {
    jsonrpc: '2.0', id: 1, method: 'merchant.authorize', params: { public_key: PUBLIC_KEY, secret: SECRET },
  });
  assert.equal(res.body.error, undefined, JSON.stringify(res.body.error));
  return res.body.result.access_token;
}

test('client-js over HTTP: rpc.discover with params [], authorize, create, get, errors, a batch', async () => {
  const anon = httpClient();
  const doc = await anon.request({ method: 'rpc.discover' }); // sent as "params":[]
  assert.equal(doc.openrpc, '1.3.2');

  const tokens = await anon.request({ method: 'merchant.authorize', params: { public_key: PUBLIC_KEY, secret: SECRET } });
  assert.equal(typeof tokens.access_token, 'string');
  const client = httpClient({ Authorization: `Bearer ${tokens.access_token}` });

  const created = await client.request({
    method: 'session.create_deposit',
    params: { amount: '50.00', country_id: 'se', merchant_reference: 'client-js-http' },
  });
  assert.match(created.id, /^[0-9a-f-]{36}$/);
  const s = await client.request({ method: 'session.get', params: { id: created.id } });
  assert.equal(s.id, created.id);
  assert.equal(s.state, 0);
  assert.equal(s.merchant_reference, 'client-js-http');
  // The one-object array OpenRPC clients may send for by-name params.
  const st = await client.request({ method: 'session.state', params: [{ id: created.id }] });
  assert.equal(st.version, 1);

  await assertRPCError(anon.request({ method: 'session.get', params: { id: created.id } }), -32001, 'Unauthorized');
  await assertRPCError(client.request({ method: 'session.get', params: { id: 'nope' } }), -32004, 'NotFound');
  await assertRPCError(client.request({ method: 'session.create_deposit', params: { country_id: 'se' } }), -32602, 'MissingParameter');

  client.startBatch();
  const batch = [
    client.request({ method: 'session.state', params: { id: created.id } }),
    client.request({ method: 'client.transition', params: { token: created.token, state: 1 } }),
  ];
  client.stopBatch();
  const [b0, b1] = await Promise.all(batch);
  assert.equal(b0.id, created.id);
  assert.equal(b1.state, 1);
  assert.equal(b1.state_name, 'STATE_AUTHENTICATION_STARTED');
});

test('client-js over WebSocket: merchant.authenticate, calls, a batch, session.changed notifications', async () => {
  const bearer = await accessToken();
  const transport = new WebSocketTransport(wsUrl());
  const client = new Client(new RequestManager([transport]));
  try {
    const doc = await client.request({ method: 'rpc.discover' });
    assert.equal(doc.openrpc, '1.3.2');
    await assertRPCError(client.request({ method: 'session.create_deposit', params: { amount: 10, country_id: 'se' } }), -32001, 'Unauthorized');
    assert.equal(await client.request({ method: 'merchant.authenticate', params: { access_token: bearer } }), true);

    const created = await client.request({
      method: 'session.create_deposit',
      params: { amount: '50.00', country_id: 'se', merchant_reference: 'client-js-ws' },
    });
    const s = await client.request({ method: 'session.get', params: { id: created.id } });
    assert.equal(s.merchant_reference, 'client-js-ws');

    const notes = [];
    let wake;
    client.onNotification((n) => { notes.push(n); wake?.(); });
    const sub = await client.request({ method: 'session.subscribe', params: { id: created.id } });
    assert.match(sub.subscription, /^sub_/);

    client.startBatch();
    const batch = [
      client.request({ method: 'client.transition', params: { token: created.token, state: 1 } }),
      client.request({ method: 'session.state', params: { id: created.id } }),
    ];
    client.stopBatch();
    const [moved, state] = await Promise.all(batch);
    assert.equal(moved.state, 1);
    assert.equal(state.state, 1);

    const deadline = Date.now() + 10_000;
    while (notes.length < 1 && Date.now() < deadline) {
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, deadline - Date.now()); });
    }
    assert.equal(notes.length, 1, 'one session.changed notification');
    assert.equal(notes[0].method, 'session.changed');
    assert.deepEqual(notes[0].params, {
      subscription: sub.subscription, session_id: created.id, state: 1,
      state_name: 'STATE_AUTHENTICATION_STARTED', version: 2, error_code: null,
    });
    assert.equal(await client.request({ method: 'session.unsubscribe', params: { subscription: sub.subscription } }), true);
  } finally {
    client.close();
  }
});
