// C++ uWebSockets echo server, the peer the targets are set against: every
// text and binary message back as it came on `/` and `/echo` (uWebSockets
// answers pings and closes itself), and `/broadcast`, where each message is
// published to every other connection. Plain, or TLS with --tls-cert and
// --tls-key (OpenSSL). One thread unless --threads N: then N event loops,
// each with its own App and its own SO_REUSEPORT listener on the same port
// (uSockets sets it), as uWebSockets' threaded examples do. Their
// /broadcast reaches the subscribers of the same thread only, so fan-out
// is compared on one thread.
// With --compression, permessage-deflate for clients that offer it: its
// shared compressor, or DEDICATED_COMPRESSOR_3KB (window 2^9, memLevel 1),
// each with the shared decompressor; every message is sent with the
// compress hint, which uWebSockets follows when the client agreed.
//
//   peer-uws-cpp --listen 127.0.0.1:9001 [--threads N] [--tls-cert cert.pem --tls-key key.pem]
//                [--compression off|shared|dedicated]
//
// Built by build.sh, from the sources the crate libuwebsockets-sys vendors.

#include "App.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct PerSocket {};

struct Options {
    std::string host = "127.0.0.1";
    int port = 9001;
    std::string cert, key;
    uWS::CompressOptions compression = uWS::DISABLED;
    int threads = 1;
};

bool parse(int argc, char **argv, Options &o) {
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--listen") {
            auto colon = value.rfind(':');
            if (colon == std::string::npos) return false;
            o.host = value.substr(0, colon);
            o.port = std::atoi(value.c_str() + colon + 1);
        } else if (flag == "--tls-cert") {
            o.cert = value;
        } else if (flag == "--tls-key") {
            o.key = value;
        } else if (flag == "--compression") {
            if (value == "off") {
                o.compression = uWS::DISABLED;
            } else if (value == "shared") {
                o.compression = uWS::CompressOptions(uWS::SHARED_COMPRESSOR | uWS::SHARED_DECOMPRESSOR);
            } else if (value == "dedicated") {
                o.compression = uWS::CompressOptions(uWS::DEDICATED_COMPRESSOR_3KB | uWS::SHARED_DECOMPRESSOR);
            } else {
                return false;
            }
        } else if (flag == "--threads") {
            o.threads = std::atoi(value.c_str());
            if (o.threads < 1 || o.threads > 256) return false;
        } else {
            return false;
        }
    }
    return (argc % 2) == 1 && o.port > 0 && o.cert.empty() == o.key.empty();
}

// The same limits as uringws's defaults (Autobahn 9.x sends 16 MiB), and
// no idle timeout or automatic pings, as in the comparisons' uringws runs.
template <bool SSL>
typename uWS::TemplatedApp<SSL>::template WebSocketBehavior<PerSocket> behaviour(bool broadcast,
                                                                                 uWS::CompressOptions compression) {
    typename uWS::TemplatedApp<SSL>::template WebSocketBehavior<PerSocket> b;
    b.compression = compression;
    const bool compress = compression != uWS::DISABLED;
    b.maxPayloadLength = 64 * 1024 * 1024;
    b.idleTimeout = 0;
    b.maxBackpressure = 64 * 1024 * 1024;
    b.sendPingsAutomatically = false;
    if (broadcast) {
        b.open = [](auto *ws) { ws->subscribe("all"); };
        b.message = [compress](auto *ws, std::string_view message, uWS::OpCode op) {
            ws->publish("all", message, op, compress);
        };
    } else {
        b.message = [compress](auto *ws, std::string_view message, uWS::OpCode op) {
            ws->send(message, op, compress);
        };
    }
    return b;
}

template <bool SSL>
int serve(uWS::TemplatedApp<SSL> &&app, const Options &o) {
    bool listening = false;
    app.template ws<PerSocket>("/", behaviour<SSL>(false, o.compression))
        .template ws<PerSocket>("/echo", behaviour<SSL>(false, o.compression))
        .template ws<PerSocket>("/broadcast", behaviour<SSL>(true, o.compression))
        .listen(o.host, o.port, [&](auto *socket) { listening = socket != nullptr; });
    if (!listening) {
        std::cerr << "peer-uws-cpp: cannot listen on " << o.host << ":" << o.port << std::endl;
        return 1;
    }
    std::cerr << "listening on " << o.host << ":" << o.port << std::endl;
    app.run();
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    if (!parse(argc, argv, o)) {
        std::cerr << "usage: peer-uws-cpp --listen HOST:PORT [--threads N] "
                     "[--tls-cert FILE --tls-key FILE] [--compression off|shared|dedicated]" << std::endl;
        return 2;
    }
    auto run = [&o]() {
        if (o.cert.empty()) {
            return serve(uWS::App(), o);
        }
        uWS::SocketContextOptions tls;
        tls.cert_file_name = o.cert.c_str();
        tls.key_file_name = o.key.c_str();
        return serve(uWS::SSLApp(tls), o);
    };
    if (o.threads == 1) {
        return run();
    }
    std::vector<std::thread> loops;
    for (int i = 0; i < o.threads; i++) {
        // A loop that cannot listen ends the whole server, not just itself.
        loops.emplace_back([&run] {
            if (run() != 0) std::_Exit(1);
        });
    }
    for (auto &loop : loops) loop.join();
    return 0;
}
