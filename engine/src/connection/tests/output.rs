//! Sends: short sends, direct frames, the end of the stream.

use super::*;

/// Past [`DIRECT_COPY_MAX`](crate::connection::output::DIRECT_COPY_MAX): a
/// send of the header and the shared payload, not a copy.
const LARGE: usize = 2000;

#[test]
fn short_vectored_send_sends_the_rest_next() {
    let (mut conn, mut ob) = open_conn();
    let payload = "x".repeat(LARGE);
    conn.send(OpCode::Text, payload.clone().into(), &mut ob);
    assert_eq!(std::mem::take(&mut ob.ready), [SLOT]);
    let send = conn.poll_transmit(&mut ob).unwrap();
    let all = send.to_vec();
    assert_eq!(all.len(), LARGE + 4);
    assert!(conn.poll_transmit(&mut ob).is_none(), "two sends in flight");
    conn.on_sent(5, Some(send), &mut ob);
    assert_eq!(conn.queued(), LARGE + 4 - 5);
    assert_eq!(ob.counters.queued_bytes, conn.queued() as u64, "the gauge");
    assert_eq!(
        std::mem::take(&mut ob.ready),
        [SLOT],
        "the rest is not listed"
    );
    let send = conn.poll_transmit(&mut ob).unwrap();
    assert_eq!(send.to_vec(), all[5..]);
    conn.on_sent(send.len() as i32, Some(send), &mut ob);
    assert_eq!((conn.queued(), ob.counters.queued_bytes), (0, 0));
    assert!(
        conn.output.io.is_none(),
        "an idle connection holds its buffers"
    );
    assert_eq!(frames(&all), [Wire::Text(payload)]);
    assert_eq!(ob.counters.bytes_out, LARGE as u64 + 4);
}

#[test]
fn a_small_send_to_an_idle_connection_goes_direct_in_one_piece_and_the_next_queues_behind() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        conn.send(OpCode::Text, "hi".into(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(
        ob.direct,
        [(SLOT, GEN, Bytes::from_static(&[0x81, 2, b'h', b'i']))]
    );
    assert!(conn.output.io.is_none(), "an Io taken for a direct send");
    assert!(ob.ready.is_empty());
    assert_eq!(conn.queued(), 4);
    assert_eq!(
        conn.send(OpCode::Binary, "there".into(), &mut ob),
        SendStatus::Queued
    );
    assert_eq!((ob.direct.len(), &ob.ready[..]), (1, &[SLOT][..]));
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("hi".into()), Wire::Binary(b"there".to_vec())]
    );
    // A large one to an idle connection is not copied.
    conn.send(OpCode::Binary, vec![7; LARGE].into(), &mut ob);
    assert!(ob.direct.is_empty());
    assert_eq!(ob.ready, [SLOT]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Binary(vec![7; LARGE])]
    );
}

#[test]
fn send_encoded_to_an_idle_connection_goes_direct_and_the_next_queues_behind() {
    let (mut conn, mut ob) = open_conn();
    assert!(conn.output.io.is_none());
    let first = encode_shared(OpCode::Text, b"first").unwrap();
    let second = encode_shared(OpCode::Text, b"second").unwrap();
    assert_eq!(conn.send_encoded(first.clone(), &mut ob), SendStatus::Sent);
    assert_eq!(ob.direct, [(SLOT, GEN, first.clone())]);
    assert!(conn.output.io.is_none(), "an Io taken for a direct send");
    assert!(ob.ready.is_empty());
    assert_eq!(conn.queued(), first.len());
    assert_eq!(conn.send_encoded(second, &mut ob), SendStatus::Queued);
    assert_eq!(ob.direct.len(), 1);
    assert_eq!(ob.ready, [SLOT]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("first".into()), Wire::Text("second".into())]
    );
    assert!(conn.output.io.is_none());
}

#[test]
fn short_direct_send_ends_the_connection() {
    let (mut conn, mut ob) = open_conn();
    let frame = encode_shared(OpCode::Text, b"publication").unwrap();
    conn.send_encoded(frame, &mut ob);
    assert!(conn.start_direct());
    assert!(conn.sending());
    conn.on_sent(4, None, &mut ob);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert!(!conn.sending());
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
}

#[test]
fn send_error_ends_the_connection() {
    for payload in [1, LARGE] {
        let (mut conn, mut ob) = open_conn();
        conn.send(OpCode::Text, "x".repeat(payload).into(), &mut ob);
        // Small: a direct send; large: a vectored one.
        let send = match std::mem::take(&mut ob.direct).pop() {
            Some(_) => {
                assert!(conn.start_direct());
                None
            }
            None => Some(conn.poll_transmit(&mut ob).unwrap()),
        };
        // Queued behind the send that fails: dropped with it, and from
        // the worker's gauge.
        conn.send(OpCode::Text, "y".into(), &mut ob);
        assert!(ob.counters.queued_bytes > 0);
        conn.on_sent(-libc::ECONNRESET, send, &mut ob);
        assert!(conn.is_closed() && conn.is_done(&ob), "{payload}");
        assert_eq!(ob.counters.queued_bytes, 0, "{payload}");
        assert_eq!(
            events(&mut conn, &mut ob),
            [closed(1006, "connection lost")]
        );
        assert_eq!(conn.poll_transmit(&mut ob).map(|s| s.len()), None);
    }
}

#[test]
fn after_input_turns_one_small_reply_into_a_direct_send() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs.len(), 1);
    let pong = Bytes::from_static(&[0x8a, 3, b'a', b'b', b'c']);
    assert_eq!(ob.direct, [(SLOT, GEN, pong)]);
    assert!(
        conn.output.io.is_none(),
        "the Io is kept for a direct reply"
    );
    assert!(conn.poll_transmit(&mut ob).is_none(), "sent twice");
    assert!(conn.start_direct());
    conn.on_sent(5, None, &mut ob);
    assert!(conn.is_open() && !conn.sending());
    assert_eq!(conn.queued(), 0);
}

#[test]
fn a_reply_over_the_direct_copy_limit_stays_vectored() {
    let (mut conn, mut ob) = open_conn();
    let big = "x".repeat(crate::connection::output::DIRECT_COPY_MAX);
    conn.send(OpCode::Text, big.clone().into(), &mut ob);
    conn.after_input(&mut ob);
    assert!(ob.direct.is_empty());
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Text(big)]);
}

#[test]
fn shutdown_closes_an_open_connection_with_1001() {
    let (mut conn, mut ob) = open_conn();
    conn.shutdown(&mut ob);
    assert_eq!(ob.wake, [SLOT]);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1001, "server shutting down")]
    );
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "server shutting down")]
    );
    assert!(!conn.is_done(&ob), "the peer's close is waited for");
    feed(&mut conn, &mut ob, &close_frame(1001, ""));
    assert!(conn.is_done(&ob));
}

#[test]
fn shutdown_drops_a_connection_in_its_handshake() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /chat HTTP/1.1\r\n", &mut ob);
    conn.shutdown(&mut ob);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn an_answer_being_written_when_the_peer_shuts_its_side_still_goes_out() {
    let (mut conn, mut ob, response) = answering_a_plain_request();
    conn.on_end_of_stream(&mut ob);
    assert!(!conn.is_done(&ob), "the answer is not written yet");
    assert_eq!(written(&mut conn, &mut ob), response);
    assert!(conn.is_done(&ob));
}

#[test]
fn the_end_of_the_stream_while_open_is_a_lost_connection() {
    let (mut conn, mut ob) = open_conn();
    conn.on_end_of_stream(&mut ob);
    assert!(conn.is_done(&ob));
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
}

#[test]
fn replies_queued_when_the_peer_half_closes_still_go_out_then_the_end() {
    let (mut conn, mut ob) = open_conn();
    let mut wire = text("one");
    wire.extend(text("two"));
    let evs = feed(&mut conn, &mut ob, &wire);
    assert_eq!(evs, [Ev::Text("one".into()), Ev::Text("two".into())]);
    conn.send(OpCode::Text, "echo one".into(), &mut ob);
    conn.send(OpCode::Text, "echo two".into(), &mut ob);
    conn.on_end_of_stream(&mut ob);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")],
        "the handler hears of the end at once"
    );
    assert_eq!(
        conn.send(OpCode::Text, "too late".into(), &mut ob),
        SendStatus::Dropped
    );
    assert!(!conn.is_done(&ob), "the replies are not written yet");
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("echo one".into()), Wire::Text("echo two".into())],
        "no close frame after them: the peer could not answer it"
    );
    assert!(conn.is_done(&ob));
}

#[test]
fn our_close_queued_when_the_peer_half_closes_still_goes_out_and_is_not_waited_for() {
    let (mut conn, mut ob) = open_conn();
    conn.send(OpCode::Binary, Bytes::from(vec![1u8; 300]), &mut ob);
    conn.shutdown(&mut ob);
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1001, "server shutting down")]
    );
    conn.on_end_of_stream(&mut ob);
    assert_eq!(events(&mut conn, &mut ob), [], "reported once");
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [
            Wire::Binary(vec![1u8; 300]),
            wire_close(1001, "server shutting down")
        ]
    );
    assert!(
        conn.is_done(&ob),
        "no answer is waited for from a closed side"
    );
}

#[test]
fn pings_while_over_the_limit_queue_no_pongs() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 100);
    let fill = Bytes::from(vec![0; 100]);
    assert_eq!(conn.send(OpCode::Binary, fill, &mut ob), SendStatus::Sent);
    let queued = conn.queued();
    for _ in 0..50 {
        let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"p"));
        assert_eq!(evs, [Ev::Ping(b"p".to_vec())]);
    }
    assert_eq!(
        conn.queued(),
        queued,
        "a peer that pings without reading cannot grow the queue"
    );
}

#[test]
fn a_drain_comes_after_a_send_completes_not_when_a_send_is_queued() {
    let (mut conn, mut ob) = open_with(|c| c.backpressure_limit = 10_000);
    assert_eq!(
        conn.send(OpCode::Text, "a".into(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(
        conn.send(OpCode::Text, "b".into(), &mut ob),
        SendStatus::Queued
    );
    assert_eq!(events(&mut conn, &mut ob), [], "nothing was written yet");
    assert_eq!(written(&mut conn, &mut ob).len(), 6);
    assert_eq!(events(&mut conn, &mut ob), [Ev::Drain]);
    assert_eq!(events(&mut conn, &mut ob), []);
}
