//! The counters in `WorkerStats` against traffic whose size is known.

mod common;

use common::*;
use std::{collections::BTreeMap, time::Duration};
use uringws_engine::{protocol::OpCode, EngineConfig, RequestOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_traffic() {
    let config = EngineConfig {
        handshake_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::echo(config);
    let mut ws = ws_connect(server.addr).await;
    for i in 0..10 {
        ws_echo(&mut ws, WsMessage::binary(vec![i; 1000])).await;
    }
    ws_echo(&mut ws, WsMessage::text("hello")).await;
    ws_close(&mut ws).await;

    // A plain request, a bad upgrade, and a head that never finishes.
    let mut plain = RawClient::connect(server.addr).await;
    plain.send(b"GET /nothing HTTP/1.1\r\n\r\n").await;
    assert_eq!(plain.read_http_head().await.unwrap().status, 404);
    let mut bad = RawClient::connect(server.addr).await;
    bad.send(upgrade_request("/").replace("13", "12").as_bytes())
        .await;
    assert_eq!(bad.read_http_head().await.unwrap().status, 426);
    let mut slow = RawClient::connect(server.addr).await;
    slow.send(b"GET / HTTP/1.1\r\n").await;
    let _ = slow.read_to_end(Duration::from_secs(3)).await;

    let stats = server.handle().stats();
    let sum =
        |f: &dyn Fn(&uringws_engine::WorkerStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    // The loop publishes its tallies once per turn: wait for the last one.
    wait_until(WAIT, "the tallies", || sum(&|s| s.messages_out()) == 11).await;
    assert_eq!(sum(&|s| s.messages_in()), 11);
    // Payloads plus headers (client frames carry 4 more bytes: the mask).
    let payload = 10 * 1000 + 5;
    let bytes_in = sum(&|s| s.bytes_in());
    let bytes_out = sum(&|s| s.bytes_out());
    assert!(bytes_in > payload + 11 * 6, "{bytes_in}");
    assert!(bytes_out > payload + 11 * 2, "{bytes_out}");
    assert!(bytes_in < payload + 2000 && bytes_out < payload + 2000);

    let mut requests = BTreeMap::new();
    for s in &stats {
        for (k, v) in s.requests() {
            *requests.entry(k).or_insert(0) += v;
        }
    }
    let want = BTreeMap::from([
        (RequestOutcome::Handshake(101), 1),
        (RequestOutcome::Handshake(426), 1),
        (RequestOutcome::Http(404), 1),
        (RequestOutcome::HandshakeTimeout, 1),
    ]);
    assert_eq!(requests, want);
    assert_eq!(sum(&|s| s.backpressure_drops()), 0);
    server.stop().await;
}

/// `queued_bytes` is a gauge: it rises while a client does not read what
/// is echoed to it, stays under the backpressure limit, and falls back to
/// nothing when the client goes, whatever was still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_bytes_follow_a_reader_that_stops_and_leaves() {
    let config = EngineConfig {
        backpressure_limit: 1 << 20,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let queued = || -> u64 {
        server
            .handle()
            .stats()
            .iter()
            .map(|s| s.queued_bytes())
            .sum()
    };
    // A small receive buffer (no autotuning): what the kernel absorbs of
    // the echoes is bounded, so the connection's queue must fill.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    let stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
    let mut client = RawClient::from_stream(stream);
    client.send(upgrade_request("/").as_bytes()).await;
    assert_eq!(client.read_http_head().await.unwrap().status, 101);
    // Echoes to a client that reads none of them: the kernel's socket
    // buffers fill (a megabyte or two), then the connection's queue does
    // and stays so. Sent until seen, as a burst can be dropped whole by
    // backpressure while the kernel still takes what was queued.
    let payload = vec![7u8; 64 << 10];
    let mut sent = 0;
    while queued() <= 256 << 10 {
        assert!(sent < 4096, "256 MiB echoed and nothing stays queued");
        for _ in 0..16 {
            client.send_frame(OpCode::Binary, true, &payload).await;
        }
        sent += 16;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let most = queued();
    assert!(most <= (1 << 20) + (128 << 10), "over the limit: {most}");
    drop(client);
    wait_until(WAIT, "the queue let go", || queued() == 0).await;
}
