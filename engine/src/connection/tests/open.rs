//! Frames of an open connection.

use super::*;

#[test]
fn text_message_is_delivered() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &text("héllo wörld"));
    assert_eq!(evs, [Ev::Text("héllo wörld".into())]);
    assert_eq!(ob.counters.messages_in, 1);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn binary_message_is_delivered() {
    let (mut conn, mut ob) = open_conn();
    let data = [0u8, 0xff, 0x80, 7];
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Binary, true, &data));
    assert_eq!(evs, [Ev::Binary(data.to_vec())]);
}

#[test]
fn fragmented_text_is_one_message_with_a_ping_between() {
    let (mut conn, mut ob) = open_conn();
    let fragments = [
        client(OpCode::Text, false, b"hel"),
        client(OpCode::Ping, true, b"!"),
        client(OpCode::Continuation, false, "lo ".as_bytes()),
        client(OpCode::Continuation, true, "wörld".as_bytes()),
    ]
    .concat();
    assert_eq!(
        feed(&mut conn, &mut ob, &fragments),
        [Ev::Ping(b"!".to_vec()), Ev::Text("hello wörld".into())]
    );
    assert_eq!(ob.counters.messages_in, 1);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Pong(b"!".to_vec())]);
}

#[test]
fn fragments_in_separate_reads_make_one_binary_message() {
    let (mut conn, mut ob) = open_conn();
    let first = client(OpCode::Binary, false, &[1, 2]);
    assert_eq!(feed(&mut conn, &mut ob, &first), []);
    let last = client(OpCode::Continuation, true, &[3]);
    let (a, b) = last.split_at(3);
    assert_eq!(feed(&mut conn, &mut ob, a), [], "half a frame");
    assert_eq!(feed(&mut conn, &mut ob, b), [Ev::Binary(vec![1, 2, 3])]);
}

#[test]
fn whole_frames_in_the_input_are_read_in_place_without_a_buffer() {
    let (mut conn, mut ob) = open_conn();
    let second = client(OpCode::Binary, true, b"b");
    let mut received = [text("a"), second.clone()].concat();
    let mut input = &mut received[..];
    let Some(Event::Message(Message::Text(t))) = conn.poll_event_in(&mut input, &mut ob) else {
        panic!("no message");
    };
    assert_eq!(t.as_str(), "a");
    assert_eq!(input, &second[..], "what was taken is cut off the front");
    assert!(conn.output.io.is_none(), "a buffer taken for a whole frame");
    assert_eq!(
        events_in(&mut conn, &mut ob, &mut input),
        [Ev::Binary(b"b".to_vec())]
    );
    assert!(input.is_empty() && conn.output.io.is_none());
}

#[test]
fn a_partial_frame_is_buffered_with_room_for_all_of_it() {
    let (mut conn, mut ob) = open_conn();
    let frame = client(OpCode::Binary, true, &[9; 1000]);
    let (head, rest) = frame.split_at(100);
    assert_eq!(feed(&mut conn, &mut ob, head), []);
    let inbuf = &conn
        .output
        .io
        .as_ref()
        .expect("no buffer for the rest")
        .inbuf;
    // The 8 header bytes are decoded; 92 of the 1000 payload bytes are in.
    assert_eq!(inbuf.len(), 92);
    assert!(inbuf.capacity() >= 1000, "room for {}", inbuf.capacity());
    assert_eq!(feed(&mut conn, &mut ob, rest), [Ev::Binary(vec![9; 1000])]);
    assert!(conn.output.io.is_none(), "an empty buffer is kept");
}

#[test]
fn a_large_frames_header_reserves_64_kib_not_its_length() {
    let (mut conn, mut ob) = open_conn();
    let frame = client(OpCode::Binary, true, &vec![0; 1 << 20]);
    // 2 bytes, an 8-byte length, the mask, and a little of the payload.
    assert_eq!(feed(&mut conn, &mut ob, &frame[..14 + 100]), []);
    let inbuf = &conn.output.io.as_ref().unwrap().inbuf;
    assert_eq!(inbuf.len(), 100);
    let capacity = inbuf.capacity();
    assert!(
        (RESERVE_AHEAD_MAX - 100..2 * RESERVE_AHEAD_MAX).contains(&capacity),
        "{capacity} bytes reserved for a frame of 1 MiB"
    );
    assert_eq!(
        feed(&mut conn, &mut ob, &frame[14 + 100..]),
        [Ev::Binary(vec![0; 1 << 20])]
    );
}

#[test]
fn ping_is_answered_with_a_pong_of_its_payload() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs, [Ev::Ping(b"abc".to_vec())]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [Wire::Pong(b"abc".to_vec())]
    );
    assert_eq!(ob.counters.messages_out, 0, "a pong is not a message");
}

#[test]
fn ping_is_not_answered_without_auto_pong() {
    let (mut conn, mut ob) = open_with(|c| c.auto_pong = false);
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Ping, true, b"abc"));
    assert_eq!(evs, [Ev::Ping(b"abc".to_vec())]);
    assert_eq!(conn.queued(), 0);
    assert!(ob.direct.is_empty() && ob.ready.is_empty());
}

#[test]
fn pong_is_reported_and_not_answered() {
    let (mut conn, mut ob) = open_conn();
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Pong, true, b"xyz"));
    assert_eq!(evs, [Ev::Pong(b"xyz".to_vec())]);
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn invalid_utf8_closes_with_1007_and_reads_nothing_more() {
    let (mut conn, mut ob) = open_conn();
    let bad = [
        client(OpCode::Text, true, &[b'o', 0xff, b'k']),
        text("after"),
    ]
    .concat();
    assert_eq!(
        feed(&mut conn, &mut ob, &bad),
        [closed(1007, "invalid UTF-8 in text payload")]
    );
    assert_eq!(feed(&mut conn, &mut ob, &text("later")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert!(!conn.is_done(&ob), "done before our close is written");
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1007, "")]);
    assert!(
        conn.is_done(&ob),
        "the peer's answer is waited for after an error"
    );
}

#[test]
fn frame_over_max_frame_size_closes_with_1009_at_its_header() {
    let (mut conn, mut ob) = open_with(|c| c.decoder.max_frame_size = 16);
    let at_limit = client(OpCode::Binary, true, &[7; 16]);
    assert_eq!(
        feed(&mut conn, &mut ob, &at_limit),
        [Ev::Binary(vec![7; 16])]
    );
    let over = client(OpCode::Binary, true, &[7; 17]);
    // Two header bytes and the mask: the payload need not arrive.
    assert_eq!(
        feed(&mut conn, &mut ob, &over[..6]),
        [closed(1009, "frame of 17 bytes exceeds the limit of 16")]
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1009, "")]);
    assert!(conn.is_done(&ob));
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let (mut conn, mut ob) = open_conn();
    assert_eq!(
        feed(&mut conn, &mut ob, &[0x81, 0x02, b'h', b'i']),
        [closed(1002, "client frame is not masked")]
    );
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1002, "")]);
}

#[test]
fn frame_after_the_peers_close_is_not_delivered() {
    let (mut conn, mut ob) = open_conn();
    let bytes = [close_frame(1000, "bye"), text("late")].concat();
    assert_eq!(feed(&mut conn, &mut ob, &bytes), [closed(1000, "bye")]);
    assert_eq!(feed(&mut conn, &mut ob, &text("later")), []);
    assert_eq!(ob.counters.messages_in, 0);
    assert_eq!(sent_frames(&mut conn, &mut ob), [wire_close(1000, "")]);
}
