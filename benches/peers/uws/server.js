'use strict';
// uWebSockets peer: the C++ uWebSockets/uSockets core through uWebSockets.js's
// prebuilt Node addon, as shipped in the npm package `uwebsockets` (a
// republication of uWebSockets.js's upstream binaries; see
// benches/README.md for why this package and what was checked).
//
// Routes, as `uringws`:
//   /broadcast  every connection subscribes to one topic; every message a
//               connection sends goes to all the others (ws.publish leaves
//               out the sender): the load generator's "broadcast" fan-out.
//   any other   echo: text back as text, binary as binary, whole.
//
// Every message costs a call into JavaScript here, which C++ uWebSockets
// does not pay; results say so next to its figures.
//
//   node server.js [--listen HOST:PORT] [--threads N]
//
// With N > 1 each extra thread is a worker_threads worker with an App of its
// own on the same port (uSockets listens with SO_REUSEPORT); broadcasts
// reach the other threads through one BroadcastChannel message per publish,
// as uringws sends one cross-core message per publish.

const path = require('path');
const { Worker, isMainThread, workerData, BroadcastChannel } = require('worker_threads');

// uringws's limits: 64 MiB messages (Autobahn 9.x sends 16 MiB), and 1 MiB
// queued per connection before a send is refused (uringws's default
// backpressure limit with its drop policy; uWS's `maxBackpressure` is the
// same rule: drop, keep the connection).
const MAX_MESSAGE = 64 << 20;
const BACKPRESSURE_LIMIT = 1 << 20;
const TOPIC = 'broadcast';

// The addon is loaded by name, not through the package's `uws.js`, so what
// runs is certainly the C++ core: no fallback, and the file is named in the
// log for the results to quote.
function loadAddon() {
  const dir = path.dirname(require.resolve('uwebsockets/package.json'));
  const file = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return { uWS: require(path.join(dir, file)), file };
  } catch (e) {
    console.error(`uws peer: cannot load ${file} for Node ${process.version}: ${e.message}`);
    process.exit(1);
  }
}

function usage(message) {
  console.error(`uws peer: ${message}\nusage: node server.js [--listen HOST:PORT] [--threads N]`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 9001, threads: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = argv[i + 1];
    if (value === undefined) usage(`${argv[i]} needs a value`);
    if (argv[i] === '--listen') {
      const colon = value.lastIndexOf(':');
      const port = Number(value.slice(colon + 1));
      if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
        usage(`bad --listen ${value}`);
      }
      // [::1]:9001 -> ::1
      args.host = value.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
      args.port = port;
    } else if (argv[i] === '--threads') {
      args.threads = Number(value);
      if (!Number.isInteger(args.threads) || args.threads < 1) usage(`bad --threads ${value}`);
    } else {
      usage(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

function serve({ host, port, threads }, thread) {
  const { uWS, file } = loadAddon();
  const common = {
    compression: uWS.DISABLED,
    maxPayloadLength: MAX_MESSAGE,
    maxBackpressure: BACKPRESSURE_LIMIT,
    closeOnBackpressureLimit: false,
    // Held connections must stay however long they are silent, as with
    // uringws --idle-timeout 0 --ping-interval 0.
    idleTimeout: 0,
    sendPingsAutomatically: false,
  };
  const app = uWS.App();
  // Only needed when another thread has subscribers.
  const relay = threads > 1 ? new BroadcastChannel(TOPIC) : null;
  if (relay) {
    relay.onmessage = ({ data }) => app.publish(TOPIC, data.payload, data.binary);
  }
  app
    .ws('/broadcast', {
      ...common,
      open: (ws) => ws.subscribe(TOPIC),
      message: (ws, message, isBinary) => {
        ws.publish(TOPIC, message, isBinary);
        // Cloned here, while uWS's buffer is still valid.
        if (relay) relay.postMessage({ payload: message, binary: isBinary });
      },
    })
    .ws('/*', {
      ...common,
      message: (ws, message, isBinary) => {
        ws.send(message, isBinary);
      },
    })
    .listen(host, port, (socket) => {
      if (!socket) {
        console.error(`uws peer: thread ${thread} cannot listen on ${host}:${port}`);
        process.exit(1);
      }
      if (thread === 0) console.error(`listening on ${host}:${port} (${file}, ${threads} thread(s))`);
    });
}

if (isMainThread) {
  const args = parseArgs(process.argv.slice(2));
  for (let thread = 1; thread < args.threads; thread++) {
    new Worker(__filename, { workerData: { args, thread } }).on('error', (e) => {
      console.error(`uws peer: thread ${thread}: ${e.message}`);
      process.exit(1);
    });
  }
  serve(args, 0);
} else {
  serve(workerData.args, workerData.thread);
}
