//! Close orders: who closes first, timeouts, lost transports.

use super::*;

#[test]
fn peer_close_is_echoed_reported_and_done_once_written() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        feed(&mut conn, &mut ob, &close_frame(4000, "done")),
        [closed(4000, "done")]
    );
    assert!(!conn.is_done(&ob), "done before the reply is written");
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(4000, "")]);
    assert!(conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn empty_peer_close_is_reported_1005_and_answered_empty() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Close, true, b""));
    assert_eq!(evs, [closed(1005, "")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Close(None)]);
    assert!(conn.is_done(&ob));
}

#[test]
fn our_close_is_reported_once_and_ends_with_the_peers_close() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        conn.send(OpCode::Text, "last".into(), &mut ob),
        SendStatus::Sent
    );
    conn.close(CloseCode::NORMAL, "bye", &mut ob);
    assert_eq!(ob.wake, [SLOT], "the handler is to hear of it");
    assert_eq!(drive(&mut conn, &mut ob), [closed(1000, "bye")]);
    assert_eq!(events(&mut conn, &mut ob), [], "reported twice");
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Text("last".into()), wire_close(1000, "bye")]
    );
    assert!(!conn.is_done(&ob), "done before the peer answered");
    assert_eq!(feed(&mut conn, &mut ob, &text("in flight")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert!(!conn.is_done(&ob));
    assert_eq!(feed(&mut conn, &mut ob, &close_frame(1000, "")), []);
    assert!(conn.is_done(&ob));
    assert_eq!(
        written(&mut conn, &mut ob),
        b"",
        "the peer's close answered after ours"
    );
}

#[test]
fn data_and_the_peers_close_in_one_read_end_our_close() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "bye", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, "bye")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "bye")]);
    let received = [
        text("one"),
        client(OpCode::Ping, true, b"two"),
        close_frame(1000, ""),
    ]
    .concat();
    assert_eq!(feed(&mut conn, &mut ob, &received), []);
    assert!(conn.is_done(&ob));
    assert_eq!(
        written(&mut conn, &mut ob),
        b"",
        "a pong or close after ours"
    );
}

#[test]
fn crossing_closes_end_with_one_report_and_one_close_frame() {
    let (mut conn, mut ob) = open_conn();
    // The peer's close is already read when the handler, on the message
    // before it, closes too.
    let mut received = [text("a"), close_frame(1001, "peer")].concat();
    let mut input = &mut received[..];
    let Some(Event::Message(Message::Text(t))) = conn.poll_event_in(&mut input, &mut ob) else {
        panic!("no message first");
    };
    assert_eq!(t.as_str(), "a");
    conn.close(CloseCode::NORMAL, "ours", &mut ob);
    assert_eq!(
        events_in(&mut conn, &mut ob, &mut input),
        [closed(1000, "ours")]
    );
    assert!(input.is_empty(), "the peer's close is not read");
    conn.after_input(&mut ob);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "ours")]);
    assert!(conn.is_done(&ob));
}

#[test]
fn close_timeout_while_waiting_for_the_peer_ends_it() {
    let (mut conn, mut ob) = open_with(|c| c.close_timeout = Duration::from_secs(5));
    ob.now = 1000;
    conn.close(CloseCode::NORMAL, "", &mut ob);
    assert_eq!(drive(&mut conn, &mut ob), [closed(1000, "")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(6000));
    ob.now = 5999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(!conn.is_done(&ob));
    ob.now = 6000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Closing);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), [], "reported twice");
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), None);
}

#[test]
fn transport_lost_while_open_reports_1006_once() {
    let (mut conn, mut ob) = open_conn();
    conn.on_transport_closed(&mut ob);
    assert!(conn.is_done(&ob));
    assert_eq!(
        events(&mut conn, &mut ob),
        [closed(1006, "connection lost")]
    );
    conn.on_transport_closed(&mut ob);
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn transport_lost_while_closing_after_the_report_reports_nothing_more() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::GOING_AWAY, "away", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1001, "away")]);
    conn.on_transport_closed(&mut ob);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), []);
}

#[test]
fn transport_lost_before_the_close_report_is_taken_reports_it_once() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::GOING_AWAY, "away", &mut ob);
    conn.on_transport_closed(&mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1001, "away")]);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn close_during_the_handshake_drops_without_a_report() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    conn.receive(b"GET /chat HTTP/1.1\r\nHost: x\r\n", &mut ob);
    conn.close(CloseCode::NORMAL, "no", &mut ob);
    assert!(conn.is_closed() && conn.is_done(&ob));
    assert_eq!(events(&mut conn, &mut ob), []);
    assert_eq!(written(&mut conn, &mut ob), b"");
    conn.receive(b"\r\n", &mut ob);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
}

#[test]
fn close_twice_reports_and_sends_once() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "first", &mut ob);
    conn.close(CloseCode::GOING_AWAY, "second", &mut ob);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, "first")]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "first")]);
}

#[test]
fn sends_after_close_are_dropped() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, "", &mut ob);
    let frame = encode_shared(OpCode::Text, b"pub").unwrap();
    assert_eq!(
        conn.send(OpCode::Text, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(
        conn.send_encoded(frame.clone(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
    assert_eq!(ob.counters.messages_out, 0);
    assert_eq!(ob.counters.backpressure_drops, 0, "not a backpressure drop");
    // So are those after the peer's close.
    let (mut conn, mut ob) = open_conn();
    feed(&mut conn, &mut ob, &close_frame(1000, ""));
    assert_eq!(
        conn.send(OpCode::Binary, "x".into(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(conn.send_encoded(frame, &mut ob), SendStatus::Dropped);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
}

#[test]
fn close_reason_is_cut_to_123_bytes_at_a_char_boundary() {
    let (mut conn, mut ob) = open_conn();
    conn.close(CloseCode::NORMAL, &"é".repeat(70), &mut ob);
    let cut = "é".repeat(61);
    assert_eq!(events(&mut conn, &mut ob), [closed(1000, &cut)]);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, &cut)]);
}
