//! A provided-buffer ring far too small for the traffic: recvs keep finding
//! it empty, and still no byte is lost and nothing stalls.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
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
