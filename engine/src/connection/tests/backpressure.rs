//! Backpressure: statuses, drops, drains, the close policy.

use super::*;

/// What each queued piece counts towards the limit beside its bytes.
const PIECE: usize = std::mem::size_of::<uringws_ring::Chunk>();

#[test]
fn send_status_is_sent_then_queued_then_dropped_at_the_limit() {
    // 100 bytes: the first frame in one piece (a copy sent directly), the
    // others in two each (a header and the payload).
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 100 + 4 * PIECE);
    let ten = Bytes::from_static(b"0123456789");
    assert_eq!(
        conn.send(OpCode::Text, ten.clone(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(conn.queued(), 12);
    assert_eq!(
        conn.send(OpCode::Text, ten.clone(), &mut ob),
        SendStatus::Queued
    );
    let rest = Bytes::from(vec![1; 74]);
    assert_eq!(conn.send(OpCode::Binary, rest, &mut ob), SendStatus::Queued);
    assert_eq!(conn.queued(), 100);
    assert_eq!(conn.send(OpCode::Text, ten, &mut ob), SendStatus::Dropped);
    assert_eq!(conn.queued(), 100);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [
            Wire::Text("0123456789".into()),
            Wire::Text("0123456789".into()),
            Wire::Binary(vec![1; 74])
        ]
    );
}

#[test]
fn drop_policy_reports_the_drop_count_once_and_wakes_the_connection() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Drop;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    for _ in 0..3 {
        assert_eq!(
            conn.send(OpCode::Text, "x".into(), &mut ob),
            SendStatus::Dropped
        );
    }
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    assert_eq!(conn.send_encoded(frame, &mut ob), SendStatus::Dropped);
    assert_eq!(ob.wake, [SLOT], "woken once for the lot");
    assert_eq!(ob.counters.backpressure_drops, 4);
    assert_eq!(ob.counters.backpressure_closes, 0);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Dropped(4)]);
    assert_eq!(events(&mut conn, &mut ob), []);
    ob.wake.clear();
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Dropped(1)]);
    assert!(conn.is_open());
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Binary(vec![0; 100])]
    );
}

#[test]
fn close_policy_closes_with_1008_over_the_limit() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Close;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1008, "backpressure limit")]
    );
    assert_eq!(
        (
            ob.counters.backpressure_drops,
            ob.counters.backpressure_closes
        ),
        (1, 1)
    );
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(
        ob.counters.backpressure_drops, 1,
        "closing, not over the limit"
    );
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [
            Wire::Binary(vec![0; 100]),
            wire_close(1008, "backpressure limit")
        ]
    );
}

#[test]
fn drain_is_reported_once_the_queue_falls_under_half_the_limit() {
    // Room for two 1,204-byte frames (sent vectored, not copied) with their
    // pieces; half of it is 1,500.
    const { assert!(2 * 1204 + 4 * PIECE < 3000) };
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 3000);
    let large = Bytes::from(vec![6; 1200]);
    assert_eq!(
        conn.send(OpCode::Binary, large.clone(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(
        conn.send(OpCode::Binary, large, &mut ob),
        SendStatus::Queued
    );
    assert_eq!(events(&mut conn, &mut ob), []);
    let send = conn.poll_transmit(&mut ob).unwrap();
    assert_eq!(send.len(), 2408);
    conn.on_sent(600, Some(send), &mut ob);
    assert_eq!(conn.queued(), 1808);
    assert_eq!(
        events(&mut conn, &mut ob),
        [],
        "1,808 is over half of 3,000"
    );
    let send = conn.poll_transmit(&mut ob).unwrap();
    conn.on_sent(400, Some(send), &mut ob);
    assert_eq!(conn.queued(), 1408);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Drain]);
    assert_eq!(events(&mut conn, &mut ob), [], "drained twice");
    ob.wake.clear();
    written(&mut conn, &mut ob);
    assert!(ob.wake.is_empty(), "woken with no drain wanted");
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn counters_track_messages_and_bytes_both_ways() {
    let (mut conn, mut ob) = open_conn();
    let input = [
        text("one"),
        client(OpCode::Binary, true, b"two"),
        client(OpCode::Ping, true, b"p"),
    ]
    .concat();
    assert_eq!(feed(&mut conn, &mut ob, &input).len(), 3);
    assert_eq!(ob.counters.messages_in, 2, "a ping is not a message");
    // The worker's on_recv counts bytes_in: counted here too, twice.
    assert_eq!(ob.counters.bytes_in, 0);
    conn.send(OpCode::Text, "reply".into(), &mut ob);
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    conn.send_encoded(frame, &mut ob);
    assert_eq!(ob.counters.messages_out, 2, "a pong is not a message");
    let out = written(&mut conn, &mut ob);
    assert_eq!(
        frames(&out),
        [
            Wire::Pong(b"p".to_vec()),
            Wire::Text("reply".into()),
            Wire::Text("pub".into())
        ]
    );
    assert_eq!(ob.counters.bytes_out, out.len() as u64);
    assert_eq!(out.len(), 3 + 7 + 5);
}

#[test]
fn auto_pong_refused_by_backpressure_is_not_a_dropped_message() {
    let (mut conn, mut ob) = open_with(|c| {
        c.backpressure_limit = 100;
        c.backpressure_policy = BackpressurePolicy::Drop;
    });
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
    assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    assert_eq!(ob.counters.backpressure_drops, 0);
}

#[test]
fn auto_pong_behind_queued_data_reports_no_drain() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        conn.send(OpCode::Text, "first".into(), &mut ob),
        SendStatus::Sent
    );
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
    assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("first".into()), Wire::Pong(b"p".to_vec())]
    );
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn empty_pings_from_a_peer_that_never_reads_hold_no_more_than_the_limit() {
    let limit = 4096;
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = limit);
    let ping = client(OpCode::Ping, true, b"");
    for _ in 0..20 {
        let pings: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 500)
            .collect();
        assert_eq!(feed(&mut conn, &mut ob, &pings).len(), 500);
    }
    // Each pong is 2 bytes on the wire but a whole piece in the queue.
    assert!(
        conn.output.load() < limit + 2 * PIECE,
        "{}",
        conn.output.load()
    );
    assert!(conn.queued() < 2 * limit / PIECE);
}
