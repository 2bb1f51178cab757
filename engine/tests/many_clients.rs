//! Many clients at once, each echoing text and binary messages of many sizes.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};
use tokio::sync::Barrier;

const CLIENTS: usize = 200;
const MESSAGES: usize = 20;

/// Sizes around every length encoding boundary (125/126, 65535/65536),
/// the provided-buffer size (16 KiB), up to 200 KiB.
const SIZES: [usize; MESSAGES] = [
    1,
    2,
    7,
    31,
    125,
    126,
    127,
    128,
    500,
    1000,
    4095,
    4096,
    10_000,
    16_384,
    16_385,
    65_535,
    65_536,
    65_537,
    100_000,
    200 << 10,
];

/// Patterns the messages are cut from (computing every byte per message in
/// a debug build would cost more than the echo itself).
struct Patterns {
    binary: Bytes,
    /// ASCII with a two-byte character now and then: valid UTF-8 that an
    /// off-by-one in a copy would likely break.
    text: String,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        const LEN: usize = (200 << 10) + 8192;
        let binary = (0..LEN)
            .map(|j| (j * 7 + j / 251) as u8)
            .collect::<Vec<u8>>();
        let mut text = String::with_capacity(LEN);
        let mut j = 0;
        while text.len() < LEN {
            if j % 97 == 0 {
                text.push('é');
            } else {
                text.push((b'a' + (j % 26) as u8) as char);
            }
            j += 1;
        }
        Patterns {
            binary: Bytes::from(binary),
            text,
        }
    })
}

/// Message `i` of `client`: text for even `i`, binary for odd, of a size
/// from SIZES (text may be a byte shorter, to end on a character).
fn message(client: usize, i: usize) -> WsMessage {
    let len = SIZES[(client + i) % MESSAGES];
    let offset = (client * 131 + i * 17) % 8192;
    let patterns = patterns();
    if i % 2 == 0 {
        let mut start = offset;
        while !patterns.text.is_char_boundary(start) {
            start += 1;
        }
        let mut end = start + len;
        while !patterns.text.is_char_boundary(end) {
            end -= 1;
        }
        WsMessage::text(&patterns.text[start..end])
    } else {
        WsMessage::binary(patterns.binary.slice(offset..offset + len))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_echo_every_byte_in_order() {
    let server = TestServer::echo(test_config());
    let addr = server.addr;
    let connected = Arc::new(Barrier::new(CLIENTS + 1));
    let go = Arc::new(Barrier::new(CLIENTS + 1));

    let mut tasks = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let (connected, go) = (connected.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            let ws = ws_connect(addr).await;
            connected.wait().await;
            go.wait().await;
            let (mut sink, mut stream) = ws.split();
            // Write all messages while reading the echoes: the order of
            // the echoes must be the order of the messages.
            let writer = async {
                for i in 0..MESSAGES {
                    sink.feed(message(client, i)).await.expect("send");
                }
                sink.flush().await.expect("flush");
            };
            let reader = async {
                for i in 0..MESSAGES {
                    let got = loop {
                        match stream.next().await.expect("stream open").expect("no error") {
                            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                            other => break other,
                        }
                    };
                    let want = message(client, i);
                    assert!(
                        got == want,
                        "client {client} message {i}: got {} bytes ({}), want {} bytes ({})",
                        got.len(),
                        kind(&got),
                        want.len(),
                        kind(&want),
                    );
                }
            };
            within(Duration::from_secs(40), "echoes", async {
                tokio::join!(writer, reader)
            })
            .await;
            let mut ws = sink.reunite(stream).expect("same stream");
            ws_close(&mut ws).await;
        }));
    }

    within(WAIT, "all clients connected", connected.wait()).await;
    // Every client has its 101, so every connection is open on a worker.
    let stats = server.handle().stats();
    let per_worker: Vec<usize> = stats.iter().map(|s| s.connections()).collect();
    assert_eq!(per_worker.len(), 2);
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        CLIENTS,
        "open connections per worker: {per_worker:?}"
    );
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "SO_REUSEPORT spread: {per_worker:?}"
    );
    assert_eq!(server.recorder.opens(), CLIENTS);
    assert!(server.recorder.opens_on(0) > 0 && server.recorder.opens_on(1) > 0);
    go.wait().await;

    for task in tasks {
        within(Duration::from_secs(50), "client task", task)
            .await
            .expect("client succeeded");
    }

    // Every close handshake completed: the counters go back to zero and
    // each connection got one close callback with the client's 1000.
    wait_until(WAIT, "no connection open", || {
        server.handle().stats().iter().all(|s| s.connections() == 0)
    })
    .await;
    wait_until(WAIT, "every close callback", || {
        server.recorder.closes().len() == CLIENTS
    })
    .await;
    server.recorder.assert_one_close_per_open();
    assert!(server
        .recorder
        .closes()
        .iter()
        .all(|(code, _)| *code == 1000));
    server.stop().await;
}

fn kind(message: &WsMessage) -> &'static str {
    match message {
        WsMessage::Text(_) => "text",
        WsMessage::Binary(_) => "binary",
        _ => "other",
    }
}
