//! The server's per-connection handshake cost: parse a browser's upgrade
//! request, validate it, and write the 101 answer; plus the parts alone.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use uringws_protocol::handshake::{accept_key, Request, DEFAULT_MAX_HEAD};

/// What Chrome sends to `ws://localhost:9001/chat`, header order included.
const CHROME_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: localhost:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://localhost:9001\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn handshake(c: &mut Criterion) {
    // Measure the success path, not an early error.
    let request = Request::parse(CHROME_REQUEST, DEFAULT_MAX_HEAD)
        .expect("valid request")
        .expect("complete request");
    let response = request.upgrade().and_then(|u| u.response(None, None));
    assert!(response
        .expect("valid upgrade")
        .starts_with(b"HTTP/1.1 101 "));

    let mut group = c.benchmark_group("handshake");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));

    // Written as a server would: match on the parse, then upgrade.
    group.bench_function("parse+validate+101", |b| {
        b.iter(
            || match Request::parse(black_box(CHROME_REQUEST), DEFAULT_MAX_HEAD) {
                Ok(Some(request)) => request.upgrade().and_then(|u| u.response(None, None)).ok(),
                _ => None,
            },
        )
    });

    group.bench_function("parse", |b| {
        b.iter(
            || match Request::parse(black_box(CHROME_REQUEST), DEFAULT_MAX_HEAD) {
                Ok(Some(request)) => request.head_len(),
                _ => 0,
            },
        )
    });

    group.bench_function("parse+validate", |b| {
        b.iter(
            || match Request::parse(black_box(CHROME_REQUEST), DEFAULT_MAX_HEAD) {
                Ok(Some(request)) => request.upgrade().map_or(0, |u| u.key().len()),
                _ => 0,
            },
        )
    });

    group.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box(b"x3JJHMbDL1EzLkh9GBhXDw==")))
    });

    group.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
