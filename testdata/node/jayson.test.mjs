// sessiond driven through jayson's HTTP client (callback API, wrapped in promises).

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import jayson from 'jayson';

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

function httpClient(headers = {}) {
  return jayson.client.http({ host: server.host, port: server.port, path: '/rpc', headers });
}

/**
 * Sends through jayson and resolves with the raw response: an object for a
 * single request, an array for a batch, undefined for a notification (HTTP 204).
 * The two-argument callback makes jayson hand back the response unsplit.
 */
function send(client, method, params, id) {
  return new Promise((resolve, reject) => {
    const cb = (err, response) => (err ? reject(err) : resolve(response));
    if (Array.isArray(method)) {
      client.request(method, cb); // batch: array of raw requests
    } else if (id === undefined) {
      client.request(method, params, cb); // jayson generates the id
    } else {
      client.request(method, params, id, cb); // id null => notification
    }
  });
}

/** A single call that must succeed; returns its result. */
async function call(client, method, params) {
  const res = await send(client, method, params);
  assert.equal(res.jsonrpc, '2.0');
  assert.equal(res.error, undefined, `${method}: ${JSON.stringify(res.error)}`);
  assert.ok('result' in res, `${method}: no result`);
  return res.result;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('jayson: authorize, create a deposit, read it, batch, notification', async (t) => {
  const anon = httpClient();

  // merchant.authorize -> tokens
  const tokens = await call(anon, 'merchant.authorize', { public_key: PUBLIC_KEY, secret: SECRET });
  assert.equal(typeof tokens.access_token, 'string');
  assert.ok(tokens.access_token.length > 0);
  assert.equal(typeof tokens.refresh_token, 'string');
  assert.notEqual(tokens.refresh_token, tokens.access_token);
  assert.equal(typeof tokens.expires, 'number');
  // default --token-ttl is 6h: expires lies in the future, within about 6h.
  const now = Date.now() / 1000;
  assert.ok(tokens.expires > now + 5 * 3600 && tokens.expires < now + 7 * 3600,
    `expires ${tokens.expires} vs now ${now}`);

  const merchant = httpClient({ Authorization: `Bearer ${tokens.access_token}` });

  // session.create_deposit -> {id, token, url}
  const created = await call(merchant, 'session.create_deposit', {
    amount: '50.00', country_id: 'se', merchant_reference: 'node-1',
  });
  assert.match(created.id, UUID_RE);
  assert.equal(typeof created.token, 'string');
  assert.match(created.token, /^[A-Za-z0-9_-]{32,}$/);
  assert.equal(created.url, `${server.baseUrl}/client/${created.token}`);

  // session.get -> the new session
  const session = await call(merchant, 'session.get', { id: created.id });
  assert.equal(session.id, created.id);
  assert.equal(session.type, 0);
  assert.equal(session.type_name, 'deposit');
  assert.equal(session.state, 0);
  assert.equal(session.state_name, 'STATE_CREATED');
  assert.equal(session.amount, 50);
  assert.equal(session.currency_id, 'sek');
  assert.equal(session.country_id, 'se');
  assert.equal(session.merchant_reference, 'node-1');
  assert.equal(session.error_code, null);
  assert.equal(session.total_steps, 8);
  assert.equal(session.version, 1);
  const version0 = session.version;

  await t.test('without the bearer, session.get is -32001 Unauthorized', async () => {
    const res = await send(anon, 'session.get', { id: created.id });
    assert.equal(res.result, undefined);
    assert.equal(res.error.code, -32001);
    assert.equal(res.error.data.error_name, 'Unauthorized');
    assert.equal(res.error.data.state, 'APPLICATION_ERROR');
  });

  await t.test('batch through jayson: session.get + session.state + unknown method', async () => {
    const batch = [
      merchant.request('session.get', { id: created.id }),
      merchant.request('session.state', { id: created.id }),
      merchant.request('session.no_such_method', { id: created.id }),
    ];
    const ids = batch.map((r) => r.id);
    assert.equal(new Set(ids).size, 3, 'jayson generated distinct ids');
    for (const r of batch) assert.equal(r.jsonrpc, '2.0');

    const responses = await send(merchant, batch);
    assert.ok(Array.isArray(responses), `batch reply is an array: ${JSON.stringify(responses)}`);
    assert.equal(responses.length, 3);
    const byId = new Map(responses.map((r) => [r.id, r]));
    assert.deepEqual([...byId.keys()].sort(), [...ids].sort(), 'every id echoed exactly once');
    for (const r of responses) {
      assert.equal(r.jsonrpc, '2.0');
      assert.equal(('result' in r) + ('error' in r), 1, 'exactly one of result/error');
    }

    const got = byId.get(ids[0]);
    assert.equal(got.error, undefined);
    assert.equal(got.result.id, created.id);
    assert.equal(got.result.state, 0);
    assert.equal(got.result.amount, 50);
    assert.equal(got.result.currency_id, 'sek');

    const state = byId.get(ids[1]);
    assert.equal(state.error, undefined);
    assert.deepEqual(state.result, {
      id: created.id,
      state: 0,
      state_name: 'STATE_CREATED',
      transaction_id: null,
      error_code: null,
      version: version0,
    });

    const unknown = byId.get(ids[2]);
    assert.equal(unknown.result, undefined);
    assert.equal(unknown.error.code, -32601);
    assert.equal(typeof unknown.error.message, 'string');
    assert.equal(unknown.error.data.error_name, 'MethodNotFound');
    assert.equal(unknown.error.data.state, 'APPLICATION_ERROR');
  });

  await t.test('batch split by jayson\'s three-argument callback', async () => {
    const batch = [
      merchant.request('session.state', { id: created.id }),
      merchant.request('nope.nope', {}),
    ];
    const [errors, successes] = await new Promise((resolve, reject) => {
      merchant.request(batch, (err, errs, oks) => (err ? reject(err) : resolve([errs, oks])));
    });
    assert.equal(errors.length, 1);
    assert.equal(errors[0].id, batch[1].id);
    assert.equal(errors[0].error.code, -32601);
    assert.equal(successes.length, 1);
    assert.equal(successes[0].id, batch[0].id);
    assert.equal(successes[0].result.id, created.id);
  });

  await t.test('notification through jayson (id null): no reply, and it is executed', async () => {
    // jayson omits "id" when it is passed as null (notificationIdNull defaults to false).
    const raw = anon.request('client.transition', { token: created.token, state: 1 }, null);
    assert.equal('id' in raw, false, `jayson built a request without id: ${JSON.stringify(raw)}`);

    // The end user's move 0 -> 1 as a notification: HTTP 204, nothing to parse.
    const res = await send(anon, 'client.transition', { token: created.token, state: 1 }, null);
    assert.equal(res, undefined);

    // It ran: the merchant sees state 1 and the version bumped.
    const after1 = await call(merchant, 'session.state', { id: created.id });
    assert.equal(after1.id, created.id);
    assert.equal(after1.state, 1);
    assert.equal(after1.state_name, 'STATE_AUTHENTICATION_STARTED');
    assert.equal(after1.version, version0 + 1);

    // A notification that fails (unknown method) still gets no reply.
    const res2 = await send(merchant, 'session.no_such_method', {}, null);
    assert.equal(res2, undefined);
  });

  await t.test('client.transition through jayson (with id) returns the session.state shape', async () => {
    const moved = await call(anon, 'client.transition', { token: created.token, state: 2, version: version0 + 1 });
    assert.equal(moved.id, created.id);
    assert.equal(moved.state, 2);
    assert.equal(moved.state_name, 'STATE_AUTHENTICATION_COMPLETED');
    assert.equal(moved.version, version0 + 2);

    // A stale version is a -32009 VersionConflict.
    const stale = await send(anon, 'client.transition', { token: created.token, state: 3, version: version0 });
    assert.equal(stale.error.code, -32009);
    assert.equal(stale.error.data.error_name, 'VersionConflict');

    const session2 = await call(merchant, 'session.get', { id: created.id });
    assert.equal(session2.state, 2);
    assert.equal(typeof session2.customer_id, 'string');
    assert.match(session2.customer_id, /^cust_/);
  });
});
