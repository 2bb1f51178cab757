//! A provided-buffer ring far too small for the traffic: recvs keep finding
//! it empty, and still no byte is lost and nothing stalls. Payloads that
//! share the ring's buffers, kept by the handler, do not starve it.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::{sync::Arc, time::Duration};
use tokio::sync::Barrier;
use uringws_engine::EngineConfig;

const CLIENTS: usize = 20;
const MESSAGES: usize = 3;
const SIZE: usize = 100 << 10;

fn payload(client: usize, i: usize) -> Vec<u8> {
    (0..SIZE)
        .map(|j| (j * 31 + j / 64 + client * 7 + i * 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_buffer_ring_loses_nothing() {
    let config = EngineConfig {
        recv_buffers: 2,
        recv_buffer_size: 64,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let addr = server.addr;

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let ws = ws_connect(addr).await;
            let (mut sink, mut stream) = ws.split();
            let writer = async {
                for i in 0..MESSAGES {
                    let message = if i % 2 == 0 {
                        WsMessage::binary(payload(client, i))
                    } else {
                        let text: String = (0..SIZE)
                            .map(|j| (b'A' + ((j + client + i) % 26) as u8) as char)
                            .collect();
                        WsMessage::text(text)
                    };
                    sink.send(message).await.expect("send");
                }
            };
            let reader = async {
                for i in 0..MESSAGES {
                    let got = loop {
                        match stream.next().await.expect("open").expect("no error") {
                            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                            other => break other,
                        }
                    };
                    match got {
                        WsMessage::Binary(data) => {
                            assert_eq!(i % 2, 0);
                            assert!(
                                data == payload(client, i),
                                "client {client} message {i} differs"
                            );
                        }
                        WsMessage::Text(text) => {
                            assert_eq!(i % 2, 1);
                            assert_eq!(text.len(), SIZE);
                            assert!(text
                                .bytes()
                                .enumerate()
                                .all(|(j, b)| b == b'A' + ((j + client + i) % 26) as u8));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            };
            tokio::join!(writer, reader);
            let mut ws = sink.reunite(stream).unwrap();
            ws_close(&mut ws).await;
        }));
    }
    for task in tasks {
        within(Duration::from_secs(40), "client", task)
            .await
            .expect("client succeeded");
    }
    let exhaustions: Vec<u64> = server
        .handle()
        .stats()
        .iter()
        .map(|s| s.buffer_exhaustions())
        .collect();
    assert!(
        exhaustions.iter().sum::<u64>() > 0,
        "the ring never ran dry: {exhaustions:?}"
    );
    wait_until(WAIT, "every close", || {
        server.recorder.closes().len() == CLIENTS
    })
    .await;
    assert!(server
        .recorder
        .closes()
        .iter()
        .all(|(code, _)| *code == 1000));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_buffer_still_works() {
    let config = EngineConfig {
        recv_buffers: 1,
        recv_buffer_size: 16,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let mut ws = ws_connect(server.addr).await;
    for size in [0, 1, 15, 16, 17, 1000, 70_000] {
        ws_echo(&mut ws, WsMessage::binary(vec![size as u8; size])).await;
    }
    ws_close(&mut ws).await;
    server.stop().await;
}

/// Many connections at once behind a ring of eight buffers of the default
/// size: most of them find it empty at some point, each must be re-armed
/// and none may lose or reorder a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_share_eight_buffers() {
    const CLIENTS: usize = 200;
    const SIZES: [usize; 6] = [1, 125, 4096, 16 << 10, (16 << 10) + 1, 40_000];
    let config = EngineConfig {
        recv_buffers: 8,
        recv_buffer_size: 16 << 10,
        ..test_config()
    };
    let server = TestServer::echo(config);
    let addr = server.addr;
    let message = |client: usize, i: usize| -> Vec<u8> {
        let size = SIZES[(client + i) % SIZES.len()];
        (0..size).map(|j| (j * 13 + client * 7 + i) as u8).collect()
    };
    // Everyone connected first, then all send at once: the ring is
    // contended, not visited by one client after another.
    let ready = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let ws = ws_connect(addr).await;
            let (mut sink, mut stream) = ws.split();
            ready.wait().await;
            let writer = async {
                for i in 0..SIZES.len() {
                    sink.send(WsMessage::binary(message(client, i)))
                        .await
                        .expect("send");
                }
            };
            let reader = async {
                for i in 0..SIZES.len() {
                    match stream.next().await.expect("open").expect("no error") {
                        WsMessage::Binary(data) => assert!(
                            data == message(client, i),
                            "client {client} message {i} differs"
                        ),
                        other => panic!("client {client} message {i}: {other:?}"),
                    }
                }
            };
            tokio::join!(writer, reader);
            let mut ws = sink.reunite(stream).unwrap();
            ws_close(&mut ws).await;
        }));
    }
    for task in tasks {
        within(Duration::from_secs(40), "client", task)
            .await
            .expect("client succeeded");
    }
    let exhaustions: u64 = server
        .handle()
        .stats()
        .iter()
        .map(|s| s.buffer_exhaustions())
        .sum();
    eprintln!("ring ran dry {exhaustions} times");
    assert!(exhaustions > 0, "the ring never ran dry");
    wait_until(WAIT, "every close", || {
        server.recorder.closes().len() == CLIENTS
    })
    .await;
    assert!(
        server
            .recorder
            .closes()
            .iter()
            .all(|(code, _)| *code == 1000),
        "{:?}",
        server.recorder.closes()
    );
    server.recorder.assert_one_close_per_open();
    wait_until(WAIT, "no connection open", || {
        server.handle().stats().iter().all(|s| s.connections() == 0)
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_keeping_every_message_does_not_starve_the_ring() {
    // 4 KiB payloads are handed to the handler as slices of 16 KiB receive
    // buffers; kept, each pins its buffer. Past half the ring the engine
    // copies, so the receives go on.
    const MESSAGES: usize = 200;
    const SIZE: usize = 4096;
    let kept: Arc<std::sync::Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let keep = kept.clone();
    let hooks = Hooks {
        message: Some(Arc::new(move |_, message| {
            if let uringws_engine::Message::Binary(data) = message {
                keep.lock().unwrap().push(data.clone());
            }
            false
        })),
        ..Hooks::default()
    };
    let config = EngineConfig {
        recv_buffers: 8,
        recv_buffer_size: 16 << 10,
        ..test_config()
    };
    let server = TestServer::start_with_workers(config, hooks, 1);
    let mut ws = ws_connect(server.addr).await;
    let message = |round: usize, i: usize| -> Vec<u8> {
        (0..SIZE).map(|j| (j * 7 + i * 13 + round) as u8).collect()
    };
    for round in 0..2 {
        let (mut sink, mut stream) = ws.split();
        let writer = async {
            for i in 0..MESSAGES {
                sink.send(WsMessage::binary(message(round, i)))
                    .await
                    .expect("send");
            }
        };
        let reader = async {
            for i in 0..MESSAGES {
                let got = within(WAIT, "an echo", stream.next())
                    .await
                    .expect("open")
                    .expect("no error");
                assert!(
                    got.into_data() == message(round, i),
                    "round {round} echo {i}"
                );
            }
        };
        tokio::join!(writer, reader);
        ws = sink.reunite(stream).unwrap();
        {
            let kept = kept.lock().unwrap();
            assert_eq!(kept.len(), MESSAGES);
            for (i, data) in kept.iter().enumerate() {
                assert!(
                    *data == message(round, i),
                    "round {round}: kept {i} differs"
                );
            }
        }
        // Let go here, on the test's thread: the worker takes the buffers
        // back, and the next round finds the whole ring again.
        kept.lock().unwrap().clear();
    }
    ws_close(&mut ws).await;
    server.stop().await;
}
