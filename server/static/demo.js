// The uringws demo page: one WebSocket to /ws speaking uringws.v1
// (docs/protocol.md). No framework and no build step; it is served as is.
'use strict';

(() => {
  // Back-off before reconnect attempt n (from 0): a random delay between
  // half and all of min(MAX, BASE * 2^n). The random half spreads the
  // clients of a restarted server over time instead of all at once.
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  // A connection that lived this long was good: the back-off starts over.
  const STABLE_MS = 10000;
  // Failures before `open` while /health answers, in a row, before the
  // page decides it is being refused rather than unlucky (a 503 while the
  // server is full or shutting down looks the same, once).
  const REFUSALS_TO_GIVE_UP = 3;
  const HEALTH_TIMEOUT_MS = 3000;
  const MAX_ITEMS = 200;
  const SUBPROTOCOL = 'uringws.v1';

  const $ = (id) => document.getElementById(id);
  const endpoint = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';

  let socket = null; // the current WebSocket, if any
  let wanted = false; // the person asked to be connected
  let generation = 0; // bumped by every connect and disconnect; stale callbacks compare it
  let attempt = 0; // attempts since the last good connection
  let refusals = 0; // failures before `open` in a row while the server answered HTTP
  let retryTimer = null;
  let countdownTimer = null;
  let nextId = 1;
  const topics = new Map(); // topic -> its <li> in #subscriptions
  const pending = new Map(); // request id -> { kind, topic }

  // ---- what the person sees

  function setState(state, text) {
    const el = $('state');
    el.dataset.state = state;
    el.textContent = text;
    const open = state === 'open';
    $('connect').disabled = state === 'open' || state === 'connecting';
    $('disconnect').disabled = state === 'idle' || state === 'refused';
    $('publish').disabled = !open;
  }

  function clock(date) {
    const pad = (n, w = 2) => String(n).padStart(w, '0');
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }

  function prepend(list, li) {
    list.prepend(li);
    while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
  }

  function span(cls, text) {
    const el = document.createElement('span');
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function logEvent(text, kind = 'info') {
    const li = document.createElement('li');
    li.className = kind;
    li.append(span('time', clock(new Date())), span('text', text));
    prepend($('events'), li);
  }

  function showMessage(topic, kind, text) {
    const li = document.createElement('li');
    li.dataset.topic = topic;
    li.dataset.kind = kind;
    li.append(span('time', clock(new Date())), span('topic', topic), span('data', text));
    prepend($('messages'), li);
  }

  function publishStatus(text, kind) {
    const el = $('publish-status');
    el.textContent = text;
    el.className = 'wide ' + kind;
  }

  // ---- connection

  function isOpen() {
    return socket !== null && socket.readyState === WebSocket.OPEN;
  }

  function send(request) {
    socket.send(typeof request === 'string' ? request : JSON.stringify(request));
  }

  function stopTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = null;
    countdownTimer = null;
  }

  function connect() {
    stopTimers();
    const gen = ++generation;
    const token = $('token').value.trim();
    const url = token ? `${endpoint}?token=${encodeURIComponent(token)}` : endpoint;
    setState('connecting', attempt > 0 ? `connecting (attempt ${attempt + 1})…` : 'connecting…');
    let ws;
    try {
      ws = new WebSocket(url, [SUBPROTOCOL]);
    } catch (e) {
      // Only a malformed URL throws; trying again cannot help.
      giveUp(`cannot connect: ${e.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    socket = ws;
    let openedAt = null;
    ws.onopen = () => {
      if (gen !== generation) return;
      openedAt = Date.now();
      refusals = 0;
      pending.clear();
      setState('open', 'connected');
      logEvent(`connected to ${endpoint}`);
      for (const topic of topics.keys()) sendSubscribe(topic);
    };
    ws.onmessage = (e) => {
      if (gen !== generation) return;
      // The server let the connection in but wants a token first (one that
      // was not in the URL): waiting for its auth deadline changes nothing.
      if (onMessage(e.data) === 'unauthenticated') {
        giveUp('refused: the server wants a token and this connection has none that it accepts');
      }
    };
    ws.onclose = (e) => {
      if (gen !== generation) return;
      socket = null;
      for (const li of topics.values()) li.dataset.status = 'pending';
      onClose(gen, e, openedAt, token !== '');
    };
  }

  // How a page tells a refusal from a drop. A browser never shows a page
  // the HTTP status of a refused upgrade (401 bad token, 403 origin): it
  // sees `close` (1006) without `open`, exactly as when the server is down.
  // So after such a failure the page asks GET /health on the same origin:
  // an answer means the server is up and chose to refuse; no answer means
  // it is unreachable, and the page keeps trying. A drop after `open` is
  // always retried; if the next attempt is refused, this catches it.
  async function onClose(gen, e, openedAt, hadToken) {
    if (openedAt !== null) {
      logEvent(`connection closed: ${describeClose(e)}`, 'warn');
      // A server that takes the token in an `auth` message closes with
      // 1008 when none came in time. With a token in the URL the next
      // upgrade tells (a bad one is refused there), so only retry then.
      if (e.code === 1008 && !hadToken) {
        giveUp(`refused: the server closed the connection (${describeClose(e)}); it may want a token`);
        return;
      }
      if (Date.now() - openedAt >= STABLE_MS) attempt = 0;
      retry('connection lost');
      return;
    }
    setState('connecting', 'connection failed; is the server up?');
    const up = await serverAnswers();
    if (gen !== generation) return; // the person clicked Connect or Disconnect meanwhile
    if (!up) {
      refusals = 0;
      retry('server unreachable');
      return;
    }
    refusals += 1;
    logEvent(`the server is up but refused the WebSocket (${refusals} of ${REFUSALS_TO_GIVE_UP})`, 'warn');
    if (refusals >= REFUSALS_TO_GIVE_UP) {
      giveUp(`refused: the server is up but refused the WebSocket ${refusals} times in a row. ` +
        `The token is wrong or missing, or this page's origin (${location.origin}) is not allowed.`);
      return;
    }
    retry('refused by the server; trying again to be sure');
  }

  async function serverAnswers() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), HEALTH_TIMEOUT_MS);
    try {
      const response = await fetch('/health', { cache: 'no-store', signal: abort.signal });
      return response.ok;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  function describeClose(e) {
    const codes = { 1000: 'normal', 1001: 'server going away', 1006: 'dropped', 1008: 'policy', 1009: 'message too big', 1011: 'server error' };
    const name = codes[e.code] ? ` ${codes[e.code]}` : '';
    return `code ${e.code}${name}${e.reason ? `, “${e.reason}”` : ''}`;
  }

  function retry(reason) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempt += 1;
    const due = Date.now() + delay;
    const show = () => {
      const left = Math.max(0, (due - Date.now()) / 1000);
      setState('waiting', `${reason}; reconnecting in ${left.toFixed(1)} s (attempt ${attempt + 1})`);
    };
    stopTimers();
    show();
    countdownTimer = setInterval(show, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function giveUp(why) {
    stopTimers();
    wanted = false;
    generation += 1;
    if (socket !== null) socket.close(1000, 'giving up');
    socket = null;
    for (const li of topics.values()) li.dataset.status = 'pending';
    setState('refused', why);
    logEvent(why, 'error');
  }

  function disconnect() {
    stopTimers();
    wanted = false;
    generation += 1;
    if (socket !== null) socket.close(1000, 'bye');
    socket = null;
    for (const li of topics.values()) li.dataset.status = 'pending';
    setState('idle', 'disconnected');
    logEvent('disconnected');
  }

  // ---- protocol

  function onMessage(data) {
    if (data instanceof ArrayBuffer) {
      // [n][topic: n bytes][payload]
      const bytes = new Uint8Array(data);
      const n = bytes.length > 0 ? bytes[0] : 0;
      const topic = new TextDecoder().decode(bytes.subarray(1, 1 + n));
      const payload = bytes.subarray(1 + n);
      const hex = Array.from(payload.subarray(0, 32), (b) => b.toString(16).padStart(2, '0')).join(' ');
      showMessage(topic, 'binary', `${payload.length} bytes: ${hex}${payload.length > 32 ? ' …' : ''}`);
      return null;
    }
    let reply;
    try {
      reply = JSON.parse(data);
    } catch {
      logEvent(`the server sent text that is not JSON: ${data.slice(0, 200)}`, 'error');
      return null;
    }
    const request = reply.id !== undefined ? pending.get(reply.id) : undefined;
    if (request) pending.delete(reply.id);
    switch (reply.type) {
      case 'message':
        showMessage(String(reply.topic), 'text',
          typeof reply.data === 'string' ? reply.data : JSON.stringify(reply.data));
        break;
      case 'ack':
        if (request && request.kind === 'subscribe') {
          const li = topics.get(request.topic);
          if (li) li.dataset.status = 'active';
        } else if (request && request.kind === 'publish') {
          publishStatus(`published to ${request.topic}`, 'ok');
        }
        break;
      case 'error': {
        const what = `${reply.code}: ${reply.message}`;
        if (request && request.kind === 'subscribe') {
          // Not resubscribed after a reconnect: the server said no.
          const li = topics.get(request.topic);
          if (li) li.remove();
          topics.delete(request.topic);
          logEvent(`cannot subscribe to ${request.topic}: ${what}`, 'error');
        } else if (request && request.kind === 'publish') {
          publishStatus(`not published to ${request.topic}: ${what}`, 'error');
        } else {
          logEvent(`error from the server: ${what}`, 'error');
        }
        if (reply.code === 'unauthenticated') return 'unauthenticated';
        break;
      }
      default:
        logEvent(`unknown reply: ${data.slice(0, 200)}`, 'warn');
    }
    return null;
  }

  function sendSubscribe(topic) {
    const id = nextId++;
    pending.set(id, { kind: 'subscribe', topic });
    send({ type: 'subscribe', topic, id });
  }

  function subscribe(topic) {
    if (topics.has(topic)) return;
    const li = document.createElement('li');
    li.dataset.topic = topic;
    li.dataset.status = 'pending';
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'unsubscribe';
    remove.textContent = '×';
    remove.title = `unsubscribe from ${topic}`;
    remove.setAttribute('aria-label', remove.title);
    remove.addEventListener('click', () => unsubscribe(topic));
    li.append(span('topic', topic), remove);
    $('subscriptions').append(li);
    topics.set(topic, li);
    // Otherwise sent on `open`, like every resubscription.
    if (isOpen()) sendSubscribe(topic);
  }

  function unsubscribe(topic) {
    const li = topics.get(topic);
    if (li) li.remove();
    topics.delete(topic);
    if (isOpen()) send({ type: 'unsubscribe', topic });
  }

  function publish(topic, text, format) {
    if (!isOpen()) {
      publishStatus('not connected', 'error');
      return;
    }
    const id = nextId++;
    let request;
    if (format === 'json') {
      try {
        JSON.parse(text);
      } catch (e) {
        publishStatus(`not JSON: ${e.message}`, 'error');
        return;
      }
      // Spliced in as typed: the server forwards data verbatim, so
      // subscribers see the publisher's own spacing and number spelling.
      request = `{"type":"publish","topic":${JSON.stringify(topic)},"id":${id},"data":${text}}`;
    } else {
      request = { type: 'publish', topic, id, data: text };
    }
    pending.set(id, { kind: 'publish', topic });
    send(request);
    publishStatus('publishing…', 'info');
  }

  // ---- wiring

  $('endpoint').textContent = endpoint;

  $('connect-form').addEventListener('submit', (e) => {
    e.preventDefault();
    wanted = true;
    attempt = 0;
    refusals = 0;
    if (socket !== null) socket.close(1000, 'reconnecting');
    socket = null;
    connect();
  });

  $('disconnect').addEventListener('click', disconnect);

  $('subscribe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('sub-topic');
    if (input.value !== '') subscribe(input.value);
    input.value = '';
  });

  $('publish-form').addEventListener('submit', (e) => {
    e.preventDefault();
    publish($('pub-topic').value, $('pub-data').value, $('pub-format').value);
  });

  $('clear').addEventListener('click', () => $('messages').replaceChildren());

  // Back online: no reason to sit out the rest of a long back-off.
  window.addEventListener('online', () => {
    if (wanted && retryTimer !== null) connect();
  });
})();
