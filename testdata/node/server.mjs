// Test helper: builds sessiond once per test file and runs it on a free port
// with a fresh database, for the third-party client tests in this folder.
//
// node --test runs every test file in its own process, so the module-level
// build cache below means "one `go build` per test file".

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The merchant every server started here is given (`--merchant pk_node:sk_node`). */
export const PUBLIC_KEY = 'pk_node';
export const SECRET = 'sk_node';

/** Deadline for the "listening" log line after spawn. */
const LISTEN_DEADLINE_MS = 30_000;
/** Deadline for the process to exit after SIGTERM (the server drains for at most 10 s). */
const STOP_DEADLINE_MS = 20_000;
/** Deadline for `go build` (a cold module/build cache can be slow). */
const BUILD_DEADLINE_MS = 10 * 60_000;

/** The repository root: this file lives in <root>/testdata/node/. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const tempDirs = new Set();
const children = new Set();

// Last-resort cleanup if a test file dies without calling stop().
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

async function makeTempDir(prefix) {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

async function removeTempDir(dir) {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

let buildPromise = null;

/**
 * Builds the sessiond binary into a fresh temp dir (once per process) and
 * returns its path.
 */
export function buildServer() {
  if (!buildPromise) {
    buildPromise = (async () => {
      const dir = await makeTempDir('sessiond-node-bin-');
      const bin = path.join(dir, 'sessiond');
      await new Promise((resolve, reject) => {
        execFile('go', ['build', '-o', bin, '.'], {
          cwd: REPO_ROOT,
          timeout: BUILD_DEADLINE_MS,
          maxBuffer: 16 * 1024 * 1024,
        }, (err, stdout, stderr) => {
          if (err) {
            reject(new Error(`go build failed in ${REPO_ROOT}: ${err.message}\n${stdout}${stderr}`));
          } else {
            resolve();
          }
        });
      });
      return bin;
    })();
  }
  return buildPromise;
}

/**
 * Starts sessiond on 127.0.0.1:0 with a fresh database and waits for its
 * "listening" log line. Returns a handle:
 *   { host, port, baseUrl, rpcUrl, logs, stop() }
 * stop() sends SIGTERM, waits for the exit and throws unless the exit code is 0.
 */
export async function startServer({ extraArgs = [] } = {}) {
  const bin = await buildServer();
  const dataDir = await makeTempDir('sessiond-node-db-');
  const args = [
    'serve',
    '--addr', '127.0.0.1:0',
    '--db', path.join(dataDir, 'x.db'),
    '--merchant', `${PUBLIC_KEY}:${SECRET}`,
    '--log-format', 'json',
    ...extraArgs,
  ];
  const child = spawn(bin, args, { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);

  const logs = [];
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  // Keep both pipes drained for the whole life of the process.
  child.stdout.on('data', (chunk) => logs.push(`[stdout] ${chunk}`));
  const lines = createInterface({ input: child.stderr, crlfDelay: Infinity });

  const addr = await new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(reject, new Error(
        `sessiond did not log "listening" within ${LISTEN_DEADLINE_MS} ms\n${logs.join('\n')}`));
    }, LISTEN_DEADLINE_MS);
    lines.on('line', (line) => {
      logs.push(line);
      let rec;
      try { rec = JSON.parse(line); } catch { return; }
      if (rec && rec.message === 'listening' && typeof rec.addr === 'string') {
        finish(resolve, rec.addr);
      }
    });
    child.on('error', (err) => finish(reject, err));
    exited.then(({ code, signal }) => finish(reject, new Error(
      `sessiond exited before listening (code ${code}, signal ${signal})\n${logs.join('\n')}`)));
  });

  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) throw new Error(`unexpected listen address ${JSON.stringify(addr)}`);
  const host = m[1];
  const port = Number(m[2]);
  const baseUrl = `http://${host}:${port}`;

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    try {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
      }
      let timer;
      const deadline = new Promise((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`sessiond did not exit within ${STOP_DEADLINE_MS} ms of SIGTERM\n${logs.join('\n')}`));
        }, STOP_DEADLINE_MS);
      });
      let result;
      try {
        result = await Promise.race([exited, deadline]);
      } finally {
        clearTimeout(timer);
      }
      if (result.code !== 0) {
        throw new Error(`sessiond exited with code ${result.code} (signal ${result.signal}) after SIGTERM\n${logs.join('\n')}`);
      }
    } finally {
      await removeTempDir(dataDir);
    }
  }

  return { host, port, baseUrl, rpcUrl: `${baseUrl}/rpc`, logs, stop };
}

/** Removes the temp dir holding the built binary (call from the last after() hook). */
export async function removeBuild() {
  if (!buildPromise) return;
  const bin = await buildPromise.catch(() => null);
  buildPromise = null;
  if (bin) await removeTempDir(path.dirname(bin));
}

/**
 * One JSON-RPC 2.0 POST with plain fetch. Returns { status, headers, body }
 * (body is the parsed JSON, or null for an empty body).
 */
export async function rpcFetch(rpcUrl, payload, { bearer } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await fetch(rpcUrl, { method: 'POST', headers, body: JSON.stringify(payload) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}
