//! Deadlines: idle, keep-alive pings, their resets.

use super::*;

#[test]
fn poll_timeout_follows_the_state() {
    let mut ob = outbox(|c| {
        c.handshake_timeout = Duration::from_secs(10);
        c.idle_timeout = Duration::from_secs(120);
        c.ping_interval = Duration::from_secs(30);
        c.close_timeout = Duration::from_secs(5);
    });
    ob.now = 100;
    let mut conn = accepted(&mut ob);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(10_100));
    ob.now = 500;
    handshake(&mut conn, &mut ob);
    assert_eq!(
        conn.poll_timeout(&ob.config, ob.now),
        Some(30_500),
        "the ping first"
    );
    let no_ping = EngineConfig {
        ping_interval: Duration::ZERO,
        ..(*ob.config).clone()
    };
    assert_eq!(
        conn.poll_timeout(&no_ping, ob.now),
        Some(120_500),
        "then idleness"
    );
    ob.now = 700;
    conn.close(CloseCode::NORMAL, "", &mut ob);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(5700));
    conn.on_transport_closed(&mut ob);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), None);
}

#[test]
fn idle_timeout_closes_with_1001() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::ZERO;
    });
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(1000));
    ob.now = 999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Idle);
    assert_eq!(ob.counters.idle_timeouts, 1);
    assert_eq!(drive(&mut conn, &mut ob), [closed(1001, "idle timeout")]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "idle timeout")]
    );
    assert!(!conn.is_done(&ob), "the peer's close is waited for");
}

#[test]
fn silence_is_pinged_then_closed_when_no_pong_comes() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::ZERO;
        c.ping_interval = Duration::from_secs(1);
    });
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(1000));
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert_eq!(drive(&mut conn, &mut ob), []);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
    assert_eq!(ob.counters.pings_sent, 1);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(2000));
    ob.now = 1999;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert_eq!(written(&mut conn, &mut ob), b"", "pinged twice");
    assert_eq!(ob.counters.pings_sent, 1);
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Ping);
    assert_eq!(
        (ob.counters.ping_timeouts, ob.counters.idle_timeouts),
        (1, 0)
    );
    assert_eq!(drive(&mut conn, &mut ob), [closed(1001, "ping timeout")]);
    assert_eq!(
        sent_frames(&mut conn, &mut ob),
        [wire_close(1001, "ping timeout")]
    );
}

#[test]
fn a_frame_answers_the_pending_ping() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(3);
        c.ping_interval = Duration::from_secs(1);
    });
    ob.now = 1000;
    conn.handle_timeout(&mut ob);
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
    ob.now = 1500;
    let evs = feed(&mut conn, &mut ob, &client(OpCode::Pong, true, b""));
    assert_eq!(evs, [Ev::Pong(vec![])]);
    assert_eq!(
        conn.poll_timeout(&ob.config, ob.now),
        Some(2500),
        "the next ping"
    );
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(written(&mut conn, &mut ob), b"");
    ob.now = 2500;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(sent_frames(&mut conn, &mut ob), [Wire::Ping(vec![])]);
}

#[test]
fn a_frame_resets_the_idle_deadline() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.ping_interval = Duration::ZERO;
    });
    ob.now = 600;
    assert_eq!(feed(&mut conn, &mut ob, &text("still here")).len(), 1);
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), Some(1600));
    ob.now = 1000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    ob.now = 1600;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Idle);
}

#[test]
fn zero_idle_timeout_and_ping_interval_leave_an_open_connection_without_deadline() {
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::ZERO;
        c.ping_interval = Duration::ZERO;
    });
    assert_eq!(conn.poll_timeout(&ob.config, ob.now), None);
    ob.now = 1 << 40;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
    assert_eq!(written(&mut conn, &mut ob), b"");
}

#[test]
fn timeout_beyond_u64_milliseconds_is_far_off_not_an_overflow() {
    // The server takes timeouts as f64 seconds: `idle_timeout = 1e17` is
    // accepted and is more milliseconds than a u64 holds.
    let (mut conn, mut ob) = open_with(|c| {
        c.idle_timeout = Duration::from_secs(u64::MAX);
        c.ping_interval = Duration::ZERO;
    });
    ob.now = 1000;
    assert_eq!(feed(&mut conn, &mut ob, &text("activity")).len(), 1);
    assert!(conn
        .poll_timeout(&ob.config, ob.now)
        .is_none_or(|at| at > 1 << 60));
    ob.now = 2000;
    assert_eq!(conn.handle_timeout(&mut ob), Expired::Nothing);
    assert!(conn.is_open());
}
