// rpc.discover, fetched with plain fetch and checked with @open-rpc/schema-utils-js.

import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  validateOpenRPCDocument,
  parseOpenRPCDocument,
  MethodCallValidator,
} from '@open-rpc/schema-utils-js';

import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import metaSchema from '@open-rpc/meta-schema';
import jsonSchemaMeta from '@json-schema-tools/meta-schema';

import { startServer, removeBuild, rpcFetch } from './server.mjs';

let server;
let discoverRes; // the raw HTTP reply to rpc.discover
let doc; // its result

before(async () => {
  server = await startServer();
  discoverRes = await rpcFetch(server.rpcUrl, { jsonrpc: '2.0', id: 'discover-1', method: 'rpc.discover' });
  doc = discoverRes.body?.result;
});

after(async () => {
  try {
    if (server) await server.stop();
  } finally {
    await removeBuild();
  }
});

// API.md section 4: "rpc.discover ... describing every method above".
const SECTION_4_METHODS = [
  'merchant.authorize',
  'merchant.token',
  'session.create_deposit',
  'session.create_recurring_payment',
  'session.create_withdrawal',
  'session.create_bank_account_selection',
  'session.create_authentication',
  'session.create',
  'session.get',
  'session.state',
  'session.get_by_token',
  'session.get_by_merchant_reference',
  'session.approve',
  'session.reject',
  'session.callbacks',
  'transaction.get',
  'transaction.state',
  'client.get',
  'client.transition',
  'rpc.discover',
];

test('rpc.discover over HTTP POST /rpc returns an OpenRPC 1.3.2 document without auth', async () => {
  const res = discoverRes;
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(res.body.jsonrpc, '2.0');
  assert.equal(res.body.id, 'discover-1');
  assert.equal(res.body.error, undefined, JSON.stringify(res.body.error));
  assert.equal(typeof doc, 'object');
  assert.equal(doc.openrpc, '1.3.2');
  assert.equal(typeof doc.info?.title, 'string');
  assert.ok(Array.isArray(doc.methods) && doc.methods.length > 0);
});

test('validateOpenRPCDocument accepts the document', () => {
  assert.ok(doc, 'rpc.discover returned no result');
  const result = validateOpenRPCDocument(doc);
  assert.equal(result, true, result === true ? '' : result.message);
});

test('the document validates against the OpenRPC meta-schema with format checking on', () => {
  assert.ok(doc, 'rpc.discover returned no result');
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  // Both packages are CommonJS; their schemas sit on module.exports.
  ajv.addSchema(structuredClone(jsonSchemaMeta.default ?? jsonSchemaMeta), 'https://meta.json-schema.tools');
  const validate = ajv.compile(structuredClone(metaSchema.openrpcDocument));
  assert.equal(validate(doc), true, JSON.stringify(validate.errors, null, 2));
  for (const server of [...(doc.servers ?? []), ...doc.methods.flatMap((m) => m.servers ?? [])]) {
    assert.doesNotThrow(() => new URL(server.url), `server url ${server.url}`);
  }
});

test('every array schema has items, and every method takes its params by name', () => {
  assert.ok(doc, 'rpc.discover returned no result');
  const missing = [];
  const walk = (v, at) => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${at}/${i}`));
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const types = Array.isArray(v.type) ? v.type : [v.type];
    if (types.includes('array') && !('items' in v)) missing.push(at);
    for (const [k, item] of Object.entries(v)) walk(item, `${at}/${k}`);
  };
  walk(doc, '');
  assert.deepEqual(missing, []);
  for (const m of doc.methods) {
    assert.equal(m.paramStructure, 'by-name', m.name);
  }
});

test('parseOpenRPCDocument dereferences it; the methods of API.md section 4 are all there', async () => {
  assert.ok(doc, 'rpc.discover returned no result');
  // parseOpenRPCDocument mutates while dereferencing; keep the fetched copy intact.
  const parsed = await parseOpenRPCDocument(structuredClone(doc), { dereference: true });
  assert.equal(parsed.openrpc, '1.3.2');

  const names = parsed.methods.map((m) => m.name);
  for (const required of ['merchant.authorize', 'session.create_deposit', 'session.get', 'client.transition']) {
    assert.ok(names.includes(required), `method ${required} missing from ${names.join(', ')}`);
  }
  for (const name of SECTION_4_METHODS) {
    assert.ok(names.includes(name), `API.md section 4 method ${name} missing from rpc.discover`);
  }
  assert.equal(new Set(names).size, names.length, 'method names are unique');

  // After dereferencing, no $ref is left anywhere in the methods.
  assert.doesNotMatch(JSON.stringify(parsed.methods), /"\$ref"/);

  const byName = new Map(parsed.methods.map((m) => [m.name, m]));

  // merchant.authorize: {public_key, secret} -> {access_token, refresh_token, expires}.
  const authorize = byName.get('merchant.authorize');
  assert.deepEqual(
    authorize.params.filter((p) => p.required).map((p) => p.name).sort(),
    ['public_key', 'secret'],
  );
  const tokenProps = Object.keys(authorize.result.schema.properties ?? {});
  for (const p of ['access_token', 'refresh_token', 'expires']) {
    assert.ok(tokenProps.includes(p), `merchant.authorize result lacks ${p}`);
  }

  // session.create_deposit requires amount and country_id; result {id, token, url}.
  const create = byName.get('session.create_deposit');
  assert.deepEqual(
    create.params.filter((p) => p.required).map((p) => p.name).sort(),
    ['amount', 'country_id'],
  );
  const createProps = Object.keys(create.result.schema.properties ?? {});
  for (const p of ['id', 'token', 'url']) {
    assert.ok(createProps.includes(p), `session.create_deposit result lacks ${p}`);
  }

  // session.get lists -32004 (dereferenced from components/errors) and -32001.
  const getCodes = byName.get('session.get').errors.map((e) => e.code);
  assert.ok(getCodes.includes(-32004), `session.get errors: ${getCodes}`);
  assert.ok(getCodes.includes(-32001), `session.get errors: ${getCodes}`);

  // client.transition can answer -32009 and takes token + state.
  const transition = byName.get('client.transition');
  assert.ok(transition.errors.map((e) => e.code).includes(-32009));
  assert.deepEqual(
    transition.params.filter((p) => p.required).map((p) => p.name).sort(),
    ['state', 'token'],
  );
});

test('MethodCallValidator built from the dereferenced document checks create_deposit params', async () => {
  assert.ok(doc, 'rpc.discover returned no result');
  const parsed = await parseOpenRPCDocument(structuredClone(doc), { dereference: true });
  const validator = new MethodCallValidator(parsed);

  // The params the client tests send are valid per the server's own schema.
  const ok = validator.validate('session.create_deposit', {
    amount: '50.00', country_id: 'se', merchant_reference: 'node-1',
  });
  assert.deepEqual(ok, []);

  // Missing the required country_id is flagged.
  const missing = validator.validate('session.create_deposit', { amount: '50.00' });
  assert.ok(Array.isArray(missing) && missing.length > 0, 'missing country_id must be a validation error');
});
