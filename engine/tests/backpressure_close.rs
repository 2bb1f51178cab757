//! Backpressure with the `Close` policy: the connection over its limit is
//! closed with 1008 after what was queued before.

mod common;

use common::*;
use std::{sync::Arc, time::Duration};
use uringws_engine::{protocol::OpCode, BackpressurePolicy, EngineConfig, SendStatus};

const LIMIT: usize = 256 << 10;
const SIZE: usize = 64 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_with_1008() {
    let log = Arc::new(FloodLog::default());
    let hooks = Hooks {
        message: Some(flood_hook(log.clone(), 1024, SIZE)),
        ..Hooks::default()
    };
    let config = EngineConfig {
        backpressure_limit: LIMIT,
        backpressure_policy: BackpressurePolicy::Close,
        ..test_config()
    };
    let server = TestServer::start(config, hooks);

    let mut slow = RawClient::upgrade(server.addr).await;
    let mut other = ws_connect(server.addr).await;
    slow.send_frame(OpCode::Text, true, FLOOD_TRIGGER.as_bytes())
        .await;
    wait_until(WAIT, "the flood", || log.floods_done() == 1).await;

    let statuses: Vec<SendStatus> = log.all().into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses[0], SendStatus::Sent);
    let accepted = statuses
        .iter()
        .take_while(|s| **s != SendStatus::Dropped)
        .count();
    assert!(
        (2..=4).contains(&accepted),
        "accepted {accepted} under a 256 KiB limit"
    );
    assert!(statuses[1..accepted]
        .iter()
        .all(|s| *s == SendStatus::Queued));
    assert!(statuses[accepted..]
        .iter()
        .all(|s| *s == SendStatus::Dropped));

    // The handler learns of the close at once, with 1008.
    wait_until(WAIT, "close callback", || {
        !server.recorder.closes().is_empty()
    })
    .await;
    assert_eq!(server.recorder.closes()[0].0, 1008);

    // A client that keeps up is not affected.
    for i in 0..10 {
        ws_echo(&mut other, WsMessage::binary(vec![i; 50_000])).await;
    }

    // The slow client reads later: what was accepted, then close 1008
    // (or, had the close timeout passed, the end of the connection).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (before, close) = slow.read_until_close(WAIT).await;
    for frame in &before {
        assert_flood_frame(frame, SIZE);
    }
    match close {
        Ok(close) => {
            assert_eq!(close.close_code(), Some(1008), "close frame {close}");
            assert_eq!(
                before.len(),
                accepted,
                "every accepted message came before the close"
            );
            // Complete the handshake; the server then ends the transport.
            slow.send_frame(OpCode::Close, true, &1008u16.to_be_bytes())
                .await;
            let (rest, _) = slow.read_to_end(WAIT).await;
            assert!(rest.is_empty());
        }
        Err(end) => {
            panic!("connection ended ({end:?}) without a close frame within the close timeout")
        }
    }
    assert_eq!(
        server.recorder.closes().len(),
        1,
        "only the slow client was closed"
    );
    ws_close(&mut other).await;
    wait_until(WAIT, "all closed", || server.recorder.closes().len() == 2).await;
    server.recorder.assert_one_close_per_open();
    server.stop().await;
}
