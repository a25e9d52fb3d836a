// @open-rpc/generator makes a TypeScript client from the document that
// rpc.discover serves. Generation must succeed. Its output does not compile:
// it names members after the methods (`public session.get: SessionGet`),
// and sessiond's method names have dots, as Brite's do. So the test calls
// through the generated client's own parts, as its request() does: the
// client-js transport it is built on, the MethodCallValidator over the
// document it embeds, and by-name params zipped from the generated
// positional signature.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import generatorModule from '@open-rpc/generator';
import { Client, RequestManager, HTTPTransport, WebSocketTransport } from '@open-rpc/client-js';
import { MethodCallValidator } from '@open-rpc/schema-utils-js';

import { startServer, removeBuild, rpcFetch, PUBLIC_KEY, SECRET } from './server.mjs';

const generate = generatorModule.default ?? generatorModule;

let server;
let outDir;
let source; // the generated index.ts
let embedded; // the document the generated client embeds

before(async () => {
  server = await startServer();
  const res = await rpcFetch(server.rpcUrl, { jsonrpc: '2.0', id: 1, method: 'rpc.discover', params: [] });
  assert.equal(res.body.error, undefined, JSON.stringify(res.body.error));
  outDir = await mkdtemp(path.join(tmpdir(), 'sessiond-generator-'));
  // The generator warns on stdout about "type" arrays (["string","null"]);
  // they are valid JSON Schema and the generated types come out right.
  const warn = console.warn;
  const log = console.log;
  console.warn = console.log = () => {};
  try {
    await generate({
      openrpcDocument: res.body.result,
      outDir,
      components: [{ type: 'client', language: 'typescript', name: 'sessiond-client' }],
    });
  } finally {
    console.warn = warn;
    console.log = log;
  }
  const dir = path.join(outDir, 'client', 'typescript', 'src');
  source = await readFile(path.join(dir, 'index.ts'), 'utf8');
  embedded = JSON.parse(await readFile(path.join(dir, 'openrpc.json'), 'utf8'));
});

after(async () => {
  try {
    if (outDir) await rm(outDir, { recursive: true, force: true });
    if (server) await server.stop();
  } finally {
    await removeBuild();
  }
});

test('the generator makes a client with every method of rpc.discover', () => {
  assert.match(source, /export class Sessiond \{/);
  for (const m of embedded.methods) {
    assert.ok(source.includes(`this.request("${m.name}", params)`), `no generated call for ${m.name}`);
  }
  // Why the TypeScript cannot compile as generated: dotted member names.
  assert.match(source, /public session\.get: SessionGet = /);
});

/**
 * The generated client's request(), in JavaScript: zip positional params
 * into by-name params, validate them against the embedded document, send
 * through client-js.
 */
function generatedClient(transport) {
  const client = new Client(new RequestManager([transport]));
  const validator = new MethodCallValidator(embedded);
  const request = (name, ...params) => {
    const method = embedded.methods.find((m) => m.name === name);
    assert.ok(method, `no method ${name} in the generated client`);
    let rpcParams = params;
    if (method.paramStructure === 'by-name') {
      rpcParams = Object.fromEntries(method.params.map((p, i) => [p.name, params[i]]).filter(([, v]) => v !== undefined));
    }
    // schema-utils-js 2 validates by-name params as the object they become.
    const errors = validator.validate(name, rpcParams);
    if (!Array.isArray(errors) || errors.length > 0) return Promise.reject(errors);
    return client.request({ method: name, params: rpcParams });
  };
  return { request, close: () => client.close() };
}

test('the generated client over HTTP: authorize, create, get, transition', async () => {
  const anon = generatedClient(new HTTPTransport(server.rpcUrl));
  const tokens = await anon.request('merchant.authorize', PUBLIC_KEY, SECRET);
  const merchant = generatedClient(new HTTPTransport(server.rpcUrl, { headers: { Authorization: `Bearer ${tokens.access_token}` } }));
  const names = embedded.methods.find((m) => m.name === 'session.create_deposit').params.map((p) => p.name);
  const args = names.map((n) => ({ amount: '50.00', country_id: 'se', merchant_reference: 'generated' })[n]);
  const created = await merchant.request('session.create_deposit', ...args);
  const s = await merchant.request('session.get', created.id);
  assert.equal(s.id, created.id);
  assert.equal(s.merchant_reference, 'generated');
  const moved = await anon.request('client.transition', created.token, 1);
  assert.equal(moved.state, 1);
  const doc = await anon.request('rpc.discover');
  assert.equal(doc.openrpc, '1.3.2');
  // The validator refuses what the schema refuses, before sending.
  await assert.rejects(merchant.request('session.get', 42));
});

test('the generated client over WebSocket: merchant.authenticate, then merchant calls', async () => {
  const res = await rpcFetch(server.rpcUrl, {
    jsonrpc: '2.0', id: 1, method: 'merchant.authorize', params: { public_key: PUBLIC_KEY, secret: SECRET },
  });
  const ws = generatedClient(new WebSocketTransport(`ws://${server.host}:${server.port}/rpc/ws`));
  try {
    assert.equal(await ws.request('merchant.authenticate', res.body.result.access_token), true);
    const names = embedded.methods.find((m) => m.name === 'session.create_deposit').params.map((p) => p.name);
    const created = await ws.request('session.create_deposit', ...names.map((n) => ({ amount: 7, country_id: 'fi' })[n]));
    const st = await ws.request('session.state', created.id);
    assert.equal(st.state_name, 'STATE_CREATED');
  } finally {
    ws.close();
  }
});
