// sessiond driven through the json-rpc-2.0 package's JSONRPCClient over fetch.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  JSONRPCClient,
  JSONRPCErrorException,
  createJSONRPCNotification,
} from 'json-rpc-2.0';

import { startServer, removeBuild, PUBLIC_KEY, SECRET } from './server.mjs';

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

/**
 * A JSONRPCClient whose send function POSTs to /rpc with fetch.
 * setBearer(token) adds `Authorization: Bearer <token>` to later requests.
 * statuses records the HTTP status of every POST, in order.
 */
function makeClient() {
  let bearer = null;
  const statuses = [];
  const client = new JSONRPCClient(async (payload) => {
    const headers = { 'Content-Type': 'application/json' };
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const res = await fetch(server.rpcUrl, { method: 'POST', headers, body: JSON.stringify(payload) });
    statuses.push(res.status);
    if (res.status === 204) {
      // Notification-only body: nothing to hand back.
      const body = await res.text();
      assert.equal(body, '', 'a 204 has an empty body');
      return;
    }
    if (res.status !== 200) {
      throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    }
    client.receive(await res.json());
  });
  return { client, statuses, setBearer: (token) => { bearer = token; } };
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('json-rpc-2.0: authorize, create, get, batch via requestAdvanced, errors', async (t) => {
  const { client, statuses, setBearer } = makeClient();

  const tokens = await client.request('merchant.authorize', { public_key: PUBLIC_KEY, secret: SECRET });
  assert.equal(typeof tokens.access_token, 'string');
  assert.ok(tokens.access_token.length > 0);
  assert.equal(typeof tokens.expires, 'number');
  assert.equal(statuses.at(-1), 200);

  await t.test('wrong secret is -32001 Unauthorized (JSONRPCErrorException)', async () => {
    await assert.rejects(
      client.request('merchant.authorize', { public_key: PUBLIC_KEY, secret: 'wrong' }),
      (err) => {
        assert.ok(err instanceof JSONRPCErrorException, `got ${err}`);
        assert.equal(err.code, -32001);
        assert.equal(err.data.error_name, 'Unauthorized');
        assert.equal(err.data.state, 'APPLICATION_ERROR');
        return true;
      },
    );
  });

  setBearer(tokens.access_token);

  const created = await client.request('session.create_deposit', {
    amount: '50.00', country_id: 'se', merchant_reference: 'node-1',
  });
  assert.match(created.id, UUID_RE);
  assert.match(created.token, /^[A-Za-z0-9_-]{32,}$/);
  assert.equal(created.url, `${server.baseUrl}/client/${created.token}`);

  const session = await client.request('session.get', { id: created.id });
  assert.equal(session.id, created.id);
  assert.equal(session.type, 0);
  assert.equal(session.type_name, 'deposit');
  assert.equal(session.state, 0);
  assert.equal(session.state_name, 'STATE_CREATED');
  assert.equal(session.amount, 50);
  assert.equal(session.currency_id, 'sek');
  assert.equal(session.country_id, 'se');
  assert.equal(session.merchant_reference, 'node-1');
  assert.equal(session.last_request, null, 'no client.* request yet');
  assert.equal(session.approval, null);

  await t.test('requestAdvanced batch: session.get + session.state', async () => {
    const before = statuses.length;
    const responses = await client.requestAdvanced([
      { jsonrpc: '2.0', id: 101, method: 'session.get', params: { id: created.id } },
      { jsonrpc: '2.0', id: 'state-102', method: 'session.state', params: { id: created.id } },
    ]);
    assert.equal(statuses.length, before + 1, 'one HTTP request for the batch');
    assert.equal(statuses.at(-1), 200);
    assert.equal(responses.length, 2);

    // requestAdvanced hands the responses back in request order, matched by id.
    const [get, state] = responses;
    assert.equal(get.id, 101, 'numeric id echoed as a number');
    assert.equal(get.jsonrpc, '2.0');
    assert.equal(get.error, undefined);
    assert.equal(get.result.id, created.id);
    assert.equal(get.result.state, 0);
    assert.equal(get.result.amount, 50);
    assert.equal(get.result.currency_id, 'sek');

    assert.equal(state.id, 'state-102', 'string id echoed as a string');
    assert.equal(state.error, undefined);
    assert.deepEqual(state.result, {
      id: created.id,
      state: 0,
      state_name: 'STATE_CREATED',
      transaction_id: null,
      error_code: null,
      version: session.version,
    });
  });

  await t.test('requestAdvanced batch with one failing entry', async () => {
    const responses = await client.requestAdvanced([
      { jsonrpc: '2.0', id: 201, method: 'session.state', params: { id: created.id } },
      { jsonrpc: '2.0', id: 202, method: 'session.get', params: { id: randomUUID() } },
      { jsonrpc: '2.0', id: 203, method: 'session.get', params: { bogus: 1 } },
    ]);
    assert.equal(responses.length, 3);
    assert.equal(responses[0].result.state, 0);
    assert.equal(responses[1].error.code, -32004);
    assert.equal(responses[1].error.data.error_name, 'NotFound');
    assert.equal(responses[2].error.code, -32602);
    assert.equal(responses[2].error.data.error_name, 'MissingParameter');
    assert.equal(responses[2].error.data.field, 'id');
  });

  await t.test('session.get with an unknown id rejects with JSONRPCErrorException -32004 NotFound', async () => {
    await assert.rejects(
      client.request('session.get', { id: randomUUID() }),
      (err) => {
        assert.ok(err instanceof JSONRPCErrorException, `got ${err}`);
        assert.equal(err.code, -32004);
        assert.equal(typeof err.message, 'string');
        assert.equal(err.data.error_name, 'NotFound');
        assert.equal(err.data.state, 'APPLICATION_ERROR');
        return true;
      },
    );
  });

  await t.test('unknown method rejects with -32601', async () => {
    await assert.rejects(client.request('session.nope', {}), (err) => {
      assert.ok(err instanceof JSONRPCErrorException);
      assert.equal(err.code, -32601);
      assert.equal(err.data.error_name, 'MethodNotFound');
      return true;
    });
  });

  await t.test('notification: HTTP 204, executed', async () => {
    const before = statuses.length;
    await client.send(createJSONRPCNotification('client.transition', { token: created.token, state: 1 }));
    assert.equal(statuses.length, before + 1);
    assert.equal(statuses.at(-1), 204);

    const state = await client.request('session.state', { id: created.id });
    assert.equal(state.state, 1);
    assert.equal(state.state_name, 'STATE_AUTHENTICATION_STARTED');
    assert.equal(state.version, session.version + 1);

    // A batch of notifications only is also a 204.
    await client.requestAdvanced([
      createJSONRPCNotification('session.get', { id: created.id }),
      createJSONRPCNotification('session.state', { id: created.id }),
    ]);
    assert.equal(statuses.at(-1), 204);

    // The end user's request is recorded on the session.
    const after = await client.request('session.get', { id: created.id });
    assert.equal(typeof after.last_request, 'number');
    assert.equal(after.state, 1);
  });
});
