//! A thread waiting in its ring, woken by another thread's [`Bell`]: only
//! an armed bell writes, one write per wait, and the wait past a tick lasts
//! at least what was asked.

use std::{
    sync::Arc,
    thread,
    time::{Duration, Instant},
};
use uringws_ring::{Bell, Ring, RingConfig};

mod common;
use common::ready;

const BELL: u64 = 9;

fn ring_with(bell: &Bell, watched: bool) -> Ring {
    let mut ring = Ring::new(&RingConfig {
        entries: 8,
        recv_buffers: 1,
        recv_buffer_size: 4096,
        files: 1,
        watched,
    })
    .unwrap();
    ring.poll_multi(bell.fd(), BELL).unwrap();
    ring.submit().unwrap();
    ring
}

#[test]
fn an_armed_bell_ends_a_long_wait_once() {
    for watched in [false, true] {
        let bell = Arc::new(Bell::new().unwrap());
        let mut ring = ring_with(&bell, watched);
        bell.arm();
        let ringer = {
            let bell = bell.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                bell.ring();
                // Disarmed by the first: no second write.
                bell.ring();
            })
        };
        let start = Instant::now();
        ring.wait(Duration::from_secs(10)).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the bell did not end the wait (watched: {watched})"
        );
        ringer.join().unwrap();
        bell.disarm();
        ring.wait(Duration::from_millis(50)).unwrap();
        let got = ready(&mut ring);
        assert_eq!(got.len(), 1, "one completion per wait (watched: {watched})");
        assert_eq!(got[0].user_data, BELL);
        assert!(got[0].more(), "the poll stays armed");
    }
}

#[test]
fn a_bell_nobody_waits_on_stays_silent() {
    let bell = Bell::new().unwrap();
    let mut ring = ring_with(&bell, false);
    bell.ring();
    ring.wait(Duration::from_millis(100)).unwrap();
    assert!(
        ready(&mut ring).is_empty(),
        "rang a thread that was not waiting"
    );
    // Armed again, it rings: the poll still watches.
    bell.arm();
    bell.ring();
    ring.wait(Duration::from_secs(5)).unwrap();
    assert_eq!(ready(&mut ring).len(), 1);
}

#[test]
fn a_wait_past_a_tick_lasts_at_least_what_was_asked() {
    let bell = Bell::new().unwrap();
    let mut ring = ring_with(&bell, true);
    for ms in [0, 1, 3, 9] {
        let start = Instant::now();
        ring.wait_past_tick(Duration::from_millis(ms)).unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(ms),
            "asked {ms} ms, waited {waited:?}"
        );
        // At most one tick past, plus what a busy machine adds.
        assert!(
            waited < Duration::from_millis(ms + 500),
            "asked {ms} ms, waited {waited:?}"
        );
    }
    assert!(ready(&mut ring).is_empty(), "nothing rang");
}
