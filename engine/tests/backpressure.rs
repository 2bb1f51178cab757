//! Backpressure with the `Drop` policy: a client that never reads while the
//! handler tries to send it 1 GiB. Alone in its test binary, because it
//! measures the process's resident set.

mod common;

use common::*;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use uringws_engine::{protocol::OpCode, BackpressurePolicy, EngineConfig, SendStatus};

const LIMIT: usize = 256 << 10;
const SIZE: usize = 64 << 10;
const PER_FLOOD: usize = 256;
/// 64 floods of 256 × 64 KiB: 1 GiB offered, in many rounds so that the
/// socket buffers (a few MiB on loopback) are full well before the end.
const FLOODS: usize = 64;
/// Wire size of one flood message (header of a 64 KiB payload: 4 bytes).
const WIRE: usize = SIZE + 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_bounded_then_drained() {
    let log = Arc::new(FloodLog::default());
    let drains = Arc::new(AtomicUsize::new(0));
    let drain_counter = drains.clone();
    let hooks = Hooks {
        message: Some(flood_hook(log.clone(), PER_FLOOD, SIZE)),
        // Each drain tells the client, numbered.
        drain: Some(Arc::new(move |conn| {
            let n = drain_counter.fetch_add(1, Ordering::SeqCst) + 1;
            conn.send_text(format!("drained {n}"));
        })),
        ..Hooks::default()
    };
    let config = EngineConfig {
        backpressure_limit: LIMIT,
        backpressure_policy: BackpressurePolicy::Drop,
        ..test_config()
    };
    let server = TestServer::start(config, hooks);

    // The slow client: upgrades, asks for floods, reads nothing.
    let mut slow = RawClient::upgrade(server.addr).await;
    let mut other = ws_connect(server.addr).await;

    slow.send_frame(OpCode::Text, true, FLOOD_TRIGGER.as_bytes())
        .await;
    wait_until(WAIT, "first flood", || log.floods_done() == 1).await;
    // Let the first flood settle into the socket buffers before the
    // baseline, then offer the rest of the gigabyte.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_before = rss_bytes();
    for flood in 2..=FLOODS {
        slow.send_frame(OpCode::Text, true, FLOOD_TRIGGER.as_bytes())
            .await;
        wait_until(WAIT, "flood", || log.floods_done() == flood).await;
        // Another client is served normally meanwhile.
        if flood % 4 == 0 {
            ws_echo(&mut other, WsMessage::text(format!("meanwhile {flood}"))).await;
            ws_echo(&mut other, WsMessage::binary(vec![flood as u8; 100_000])).await;
        }
    }
    let rss_after = rss_bytes();
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < 64 << 20,
        "RSS grew by {} MiB after offering 1 GiB to a client that does not read",
        growth >> 20
    );

    // Every flood: a few sends accepted (first Sent when the queue was
    // empty, then Queued), then only Dropped once past the limit.
    let floods = log.floods.lock().unwrap().clone();
    assert_eq!(floods.len(), FLOODS);
    eprintln!(
        "accepted per flood: {:?}; RSS growth {} KiB",
        floods
            .iter()
            .map(|f| f.iter().filter(|(s, _)| *s != SendStatus::Dropped).count())
            .collect::<Vec<_>>(),
        growth >> 10
    );
    for (n, statuses) in floods.iter().enumerate() {
        let accepted = statuses
            .iter()
            .take_while(|(s, _)| *s != SendStatus::Dropped)
            .count();
        assert!(
            statuses[accepted..]
                .iter()
                .all(|(s, _)| *s == SendStatus::Dropped),
            "flood {n}: once Dropped, Dropped until the queue is written"
        );
        assert!(
            accepted <= LIMIT.div_ceil(WIRE),
            "flood {n}: {accepted} sends accepted past the limit"
        );
        assert!(
            statuses[1.min(accepted)..accepted]
                .iter()
                .all(|(s, _)| *s == SendStatus::Queued),
            "flood {n}: behind the first send, sends are Queued"
        );
    }
    let all = log.all();
    assert_eq!(
        all[0].0,
        SendStatus::Sent,
        "the first send found an empty queue"
    );
    assert!(
        all.iter().any(|(s, _)| *s == SendStatus::Queued),
        "some sends were Queued"
    );
    let dropped = all
        .iter()
        .filter(|(s, _)| *s == SendStatus::Dropped)
        .count();
    assert!(
        dropped > all.len() * 9 / 10,
        "only {dropped} of {} dropped",
        all.len()
    );
    let max_buffered = all.iter().map(|(_, b)| *b).max().unwrap();
    assert!(
        max_buffered <= LIMIT + WIRE,
        "buffered() reached {max_buffered}, limit {LIMIT} (+ one message)"
    );
    assert!(
        max_buffered >= LIMIT,
        "the queue did reach the limit: {max_buffered}"
    );
    // The last flood found the socket still full: nothing accepted.
    assert!(
        floods[FLOODS - 1]
            .iter()
            .all(|(s, _)| *s == SendStatus::Dropped),
        "a client that reads nothing cannot take more"
    );

    // Now the slow client reads: every frame is whole and the handler's
    // `drain` runs (again) once the queue fell under half the limit.
    let drains_before = drains.load(Ordering::SeqCst);
    let mut frames = 0;
    let drained_at = loop {
        let frame = slow.read_frame().await.expect("the connection stays open");
        match frame.opcode {
            0x2 => {
                assert_flood_frame(&frame, SIZE);
                frames += 1;
            }
            0x1 => {
                let n: usize = frame
                    .text()
                    .strip_prefix("drained ")
                    .unwrap()
                    .parse()
                    .unwrap();
                if n > drains_before {
                    break n;
                }
            }
            _ => panic!("unexpected frame {frame}"),
        }
    };
    assert!(frames >= 4, "the queued messages arrived: {frames}");
    assert!(drained_at > drains_before);
    assert!(server.recorder.drains() >= drained_at);
    // And it is an ordinary connection again.
    slow.send_frame(OpCode::Text, true, b"after the flood")
        .await;
    loop {
        let frame = slow.read_frame().await.expect("open");
        if frame.opcode == 0x1 && frame.payload == b"after the flood" {
            break;
        }
        assert!(
            frame.opcode == 0x2 || frame.text().starts_with("drained"),
            "unexpected {frame}"
        );
    }
    assert!(
        server.recorder.closes().is_empty(),
        "nobody was closed: {:?}",
        server.recorder.closes()
    );
    slow.send_frame(OpCode::Close, true, &1000u16.to_be_bytes())
        .await;
    let (_, close) = slow.read_until_close(WAIT).await;
    assert_eq!(close.expect("the close reply").close_code(), Some(1000));

    ws_close(&mut other).await;
    server.stop().await;
}
