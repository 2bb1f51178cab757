// The demo page (GET /) end to end, over http and https: the release `uringws` binary and
// Debian's headless Chromium, driven through the page's own inputs and
// buttons as a person would use them.
//
//   node --test-reporter=spec demo.test.mjs
//
// URINGWS_BIN (default ../../target/release/uringws) and CHROMIUM (default
// /usr/bin/chromium) choose the programs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.URINGWS_BIN ?? resolve(here, '../../target/release/uringws');
// The server refuses URINGWS_ variables that are not its settings, and this
// one is the test's own: the servers it starts do not inherit it.
const { URINGWS_BIN: _bin, ...SERVER_ENV } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The probe's flags for this machine: without the background-networking
// ones Chromium keeps trying Google's hosts, which the closed network
// refuses. Playwright's launch() adds a fresh temporary --user-data-dir
// and removes it on close.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WAIT_MS = 10_000;
// Reconnecting takes a few back-off steps (0.5, 1, 2 s, jittered).
const RECONNECT_MS = 20_000;
const TEST_MS = 50_000;
const WHOLE_RUN_MS = 110_000;

// Whatever happens, the run ends: a hung browser or server cannot hold CI.
const watchdog = setTimeout(() => {
  console.error(`e2e: FAILED: still running after ${WHOLE_RUN_MS / 1000} s; giving up`);
  killServers();
  process.exit(1);
}, WHOLE_RUN_MS);
watchdog.unref();

for (const [what, path] of [['uringws binary (URINGWS_BIN)', BIN], ['Chromium (CHROMIUM)', CHROMIUM]]) {
  if (!existsSync(path)) {
    console.error(`e2e: FAILED: no ${what} at ${path}`);
    process.exit(1);
  }
}

// ---- the server

const servers = new Set();

function killServers() {
  for (const server of servers) server.child?.kill('SIGKILL');
}
process.on('exit', killServers);

async function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** `uringws` on a fixed port, so a restarted one is where the page looks. */
class Server {
  constructor(port, args = []) {
    this.port = port;
    this.args = args;
    this.output = '';
    this.child = null;
  }

  async start() {
    const args = ['--listen', `127.0.0.1:${this.port}`, '--workers', '2', '--no-pin',
      '--log-level', 'warn', ...this.args];
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...SERVER_ENV, NO_COLOR: '1' } });
    this.child = child;
    servers.add(this);
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-4000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = null;
    child.once('exit', (code, signal) => { exited = signal ?? code; });
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      if (exited !== null) {
        throw new Error(`uringws ${args.join(' ')} exited (${exited}) before answering:\n${this.output}`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}/health`, { signal: AbortSignal.timeout(1000) });
        if (response.ok) return this;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        throw new Error(`uringws did not answer /health within ${WAIT_MS} ms:\n${this.output}`);
      }
      await sleep(50);
    }
  }

  /** SIGKILL: the connections drop with no close frame, as in a crash. */
  async kill() {
    const child = this.child;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGKILL');
    await gone;
    servers.delete(this);
  }
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// ---- the browser and a person at a page

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: WAIT_MS });
});

after(async () => {
  await browser?.close();
  for (const server of [...servers]) await server.kill();
});

/** A page in its own browser context, as a second person would have. */
async function openPage(url, on = browser) {
  const context = await on.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`uncaught exception: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) {
      page.problems.push(`CSP violation: ${m.text()}`);
    }
  });
  const response = await page.goto(url, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `GET ${url}`);
  const headers = response.headers();
  assert.equal(headers['content-type'], 'text/html; charset=utf-8');
  assert.match(headers['content-security-policy'] ?? '', /connect-src 'self'/);
  assert.equal(headers['cache-control'], 'no-cache');
  return page;
}

function assertNoProblems(page, who) {
  assert.deepEqual(page.problems, [], `${who}: the page reported problems`);
}

async function stateOf(page) {
  return page.$eval('#state', (el) => `${el.dataset.state}: ${el.textContent}`).catch((e) => `unreadable (${e.message})`);
}

/** Waits until #state says `state`; the failure names what it says instead. */
async function expectState(page, who, state, timeout = WAIT_MS) {
  try {
    await page.locator(`#state[data-state="${state}"]`).waitFor({ timeout });
  } catch {
    throw new Error(`${who}: the page did not reach "${state}" within ${timeout} ms; it shows ${await stateOf(page)}`);
  }
}

async function connect(page, who, token = '') {
  await page.fill('#token', token);
  await page.click('#connect');
  await expectState(page, who, 'open');
}

async function subscribe(page, who, topic) {
  await page.fill('#sub-topic', topic);
  await page.click('#subscribe');
  await expectSubscribed(page, who, topic);
}

async function expectSubscribed(page, who, topic, timeout = WAIT_MS) {
  try {
    await page.locator(`#subscriptions li[data-topic="${topic}"][data-status="active"]`).waitFor({ timeout });
  } catch {
    throw new Error(`${who}: no acknowledged subscription to ${topic} within ${timeout} ms; state ${await stateOf(page)}`);
  }
}

async function publish(page, who, topic, data, format = 'text') {
  await page.fill('#pub-topic', topic);
  await page.selectOption('#pub-format', format);
  await page.fill('#pub-data', data);
  await page.click('#publish');
  try {
    await page.locator('#publish-status', { hasText: `published to ${topic}` }).waitFor();
  } catch {
    const status = await page.textContent('#publish-status');
    throw new Error(`${who}: publishing to ${topic} was not acknowledged; the page says "${status}"`);
  }
}

async function expectMessage(page, who, topic, data) {
  const item = page.locator(`#messages li[data-topic="${topic}"]`)
    .filter({ has: page.locator('.data').getByText(data, { exact: true }) });
  try {
    await item.first().waitFor();
  } catch {
    const seen = await page.$$eval('#messages li', (lis) => lis.map((li) => li.textContent));
    throw new Error(`${who}: no message ${JSON.stringify(data)} on ${topic}; the list holds ${JSON.stringify(seen)}`);
  }
  const time = await item.first().locator('.time').textContent();
  assert.match(time, /^\d\d:\d\d:\d\d\.\d{3}$/, `${who}: the message shows its time`);
}

// ---- the cases

test('two pages subscribe, publish and receive; both reconnect after the server restarts', { timeout: TEST_MS }, async () => {
  const server = await new Server(await freePort(), ['--anonymous-publish']).start();
  const url = `http://127.0.0.1:${server.port}/`;
  const alice = await openPage(url);
  const bob = await openPage(url);

  await connect(alice, 'alice');
  await connect(bob, 'bob');
  await subscribe(alice, 'alice', 'news');
  await subscribe(bob, 'bob', 'news');

  await publish(alice, 'alice', 'news', 'hello from alice');
  await expectMessage(bob, 'bob', 'news', 'hello from alice');
  await expectMessage(alice, 'alice', 'news', 'hello from alice');

  // The server dies: both pages notice and start backing off.
  await server.kill();
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    try {
      await page.waitForFunction(() => document.querySelector('#state').dataset.state !== 'open', null, { timeout: WAIT_MS });
    } catch {
      throw new Error(`${who}: still shows "open" ${WAIT_MS} ms after the server was killed`);
    }
  }
  await sleep(1000); // at least one attempt finds nobody listening
  await server.start();

  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await expectState(page, who, 'open', RECONNECT_MS);
    // Resubscribed by the page itself, not by the test.
    await expectSubscribed(page, who, 'news');
  }
  await publish(bob, 'bob', 'news', '{"n": 2, "from": "bob"}', 'json');
  await expectMessage(alice, 'alice', 'news', '{"n":2,"from":"bob"}');
  await expectMessage(bob, 'bob', 'news', '{"n":2,"from":"bob"}');

  assertNoProblems(alice, 'alice');
  assertNoProblems(bob, 'bob');
  await server.kill();
});

/** The sum over workers of a counter on the server's /metrics. */
async function metric(server, name) {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
  return text.split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

test('the page agrees to permessage-deflate, and a long message goes compressed both ways', { timeout: TEST_MS }, async () => {
  const server = await new Server(await freePort(), ['--anonymous-publish']).start();
  const url = `http://127.0.0.1:${server.port}/`;
  const alice = await openPage(url);
  const bob = await openPage(url);
  // The 101 as Chromium received it, from its DevTools protocol.
  const answers = [];
  for (const page of [alice, bob]) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.webSocketHandshakeResponseReceived', ({ response }) => answers.push(response));
  }
  await connect(alice, 'alice');
  await connect(bob, 'bob');
  await subscribe(bob, 'bob', 'long');
  const before = [await metric(server, 'uringws_deflate_messages_in_total'), await metric(server, 'uringws_deflate_messages_out_total')];
  const long = 'compressible text, '.repeat(40).trim();
  await publish(alice, 'alice', 'long', long);
  await expectMessage(bob, 'bob', 'long', long);
  assert.equal(answers.length, 2, 'a handshake per page');
  for (const response of answers) {
    assert.equal(response.status, 101);
    const extensions = Object.entries(response.headers)
      .filter(([name]) => name.toLowerCase() === 'sec-websocket-extensions')
      .map(([, value]) => value);
    assert.deepEqual(extensions, ['permessage-deflate; server_no_context_takeover; client_no_context_takeover']);
  }
  const after = [await metric(server, 'uringws_deflate_messages_in_total'), await metric(server, 'uringws_deflate_messages_out_total')];
  // Chromium compressed the publish; the server compressed its delivery.
  assert.ok(after[0] > before[0], `compressed messages in: ${before[0]} -> ${after[0]}`);
  assert.ok(after[1] > before[1], `compressed messages out: ${before[1]} -> ${after[1]}`);
  assertNoProblems(alice, 'alice');
  assertNoProblems(bob, 'bob');
  await server.kill();
});

// The same path a 401 or 403 takes through the page, on any server: with
// room for no connections it answers every upgrade 503 and /health 200.
// The page must give up after a few tries instead of retrying forever.
test('a server that refuses every upgrade: the page stops retrying and says refused', { timeout: TEST_MS }, async () => {
  const server = await new Server(await freePort(), ['--max-connections-per-worker', '0']).start();
  const page = await openPage(`http://127.0.0.1:${server.port}/`);
  await page.click('#connect');
  await expectState(page, 'refused page', 'refused', RECONNECT_MS);
  assert.match(await page.textContent('#state'), /refused/i);
  // Given up for good: no further attempt starts.
  await sleep(1500);
  assert.equal(await page.$eval('#state', (el) => el.dataset.state), 'refused');
  assert.equal(await page.isEnabled('#connect'), true, 'Connect is offered again');
  assertNoProblems(page, 'refused page');
  await server.kill();
});

test('a bad token is refused and the page says so; the right one works', { timeout: TEST_MS }, async () => {
  const server = await new Server(await freePort(), ['--auth-required', '--token', 'demo-secret:*|*']).start();
  const page = await openPage(`http://127.0.0.1:${server.port}/`);
  // Chosen before connecting: sent on open, so a server that lets a
  // connection without a token in (waiting for an `auth` message) answers
  // it `unauthenticated` at once instead of at its auth deadline.
  await page.fill('#sub-topic', 'news');
  await page.click('#subscribe');

  for (const [token, why] of [['wrong-token', 'a bad token'], ['', 'no token']]) {
    await page.fill('#token', token);
    await page.click('#connect');
    await expectState(page, `with ${why}`, 'refused', RECONNECT_MS);
    assert.match(await page.textContent('#state'), /refused/i, `with ${why}`);
  }

  await connect(page, 'with the right token', 'demo-secret');
  await subscribe(page, 'with the right token', 'news');
  await publish(page, 'with the right token', 'news', 'let in');
  await expectMessage(page, 'with the right token', 'news', 'let in');
  assertNoProblems(page, 'auth page');
  await server.kill();
});

test('a page from an origin not on the allow-list is refused; one from an allowed origin works', { timeout: TEST_MS }, async () => {
  const port = await freePort();
  const server = await new Server(port, ['--origin', `http://127.0.0.1:${port}`]).start();

  // Same server, other origin: the browser sends Origin: http://localhost:PORT.
  const outsider = await openPage(`http://localhost:${port}/`);
  await outsider.click('#connect');
  await expectState(outsider, 'page from localhost', 'refused', RECONNECT_MS);
  assert.match(await outsider.textContent('#state'), /refused.*origin/is);

  const insider = await openPage(`http://127.0.0.1:${port}/`);
  await connect(insider, 'page from 127.0.0.1');
  await subscribe(insider, 'page from 127.0.0.1', 'news');
  assertNoProblems(outsider, 'page from localhost');
  assertNoProblems(insider, 'page from 127.0.0.1');
  await server.kill();
});

test('over https: the page opens wss:// to the TLS listener, and pub/sub works through it', { timeout: TEST_MS }, async () => {
  // A certificate of the test's own, made now; Chromium is told to trust
  // exactly its key and nothing else.
  const dir = mkdtempSync(join(tmpdir(), 'uringws-e2e-tls-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const spki = new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  const tlsPort = await freePort();
  const server = await new Server(await freePort(), ['--anonymous-publish',
    '--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert', cert, '--tls-key', key]).start();
  const trusting = await chromium.launch({ executablePath: CHROMIUM, timeout: WAIT_MS,
    args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${pin}`] });
  try {
    const url = `https://localhost:${tlsPort}/`;
    const alice = await openPage(url, trusting);
    const bob = await openPage(url, trusting);
    const sockets = [];
    for (const page of [alice, bob]) page.on('websocket', (ws) => sockets.push(ws.url()));
    await connect(alice, 'alice');
    await connect(bob, 'bob');
    await subscribe(bob, 'bob', 'secure');
    await publish(alice, 'alice', 'secure', 'hello over wss');
    await expectMessage(bob, 'bob', 'secure', 'hello over wss');
    assert.ok(sockets.length >= 2, `the pages opened websockets: ${sockets}`);
    for (const socket of sockets) {
      assert.ok(socket.startsWith(`wss://localhost:${tlsPort}/`), `a wss:// connection to the TLS port: ${socket}`);
    }
    assertNoProblems(alice, 'alice');
    assertNoProblems(bob, 'bob');
  } finally {
    await trusting.close();
    await server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
