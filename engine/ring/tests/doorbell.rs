//! A watched ring (`RingConfig::watched`) over a real loopback socket: the
//! kernel rings its doorbell for work only while the thread said it may
//! sleep, work that came while it was awake keeps it from sleeping, and the
//! work waits in the kernel until the thread's next submit.

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::fd::{AsRawFd, BorrowedFd},
};
use uringws_ring::{Ring, Socket};

mod common;
use common::{connected, next, ready};

struct Pair {
    ring: Ring,
    socket: Socket,
    stream: TcpStream,
}

fn pair() -> Pair {
    let (ring, socket, stream) = connected(4, 4096, true);
    Pair {
        ring,
        socket,
        stream,
    }
}

/// Whether the doorbell turns readable within `ms`; reading it resets it.
fn rang(doorbell: BorrowedFd<'_>, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: doorbell.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
    if n == 0 {
        return false;
    }
    let mut count = 0u64;
    // SAFETY: eight writable bytes, as an eventfd read needs.
    let got = unsafe { libc::read(pfd.fd, (&mut count as *mut u64).cast(), 8) };
    assert_eq!(got, 8);
    true
}

#[test]
fn a_receive_rings_the_doorbell_of_a_sleeping_thread_and_waits_for_its_submit() {
    let mut p = pair();
    assert!(p.ring.may_sleep(), "nothing is waiting");
    let doorbell = p.ring.doorbell().expect("a watched ring has one");
    assert!(!rang(doorbell, 50), "rang with nothing to do");
    p.stream.write_all(b"hello").unwrap();
    assert!(
        rang(p.ring.doorbell().unwrap(), 2000),
        "no ring for a receive"
    );
    p.ring.woke();
    // The receive is done by this thread's next submit, not before.
    assert!(ready(&mut p.ring).is_empty());
    p.ring.submit().unwrap();
    let got = ready(&mut p.ring);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].received(), Some(&b"hello"[..]));
}

#[test]
fn work_that_came_while_awake_keeps_the_thread_from_sleeping() {
    let mut p = pair();
    p.ring.woke();
    p.stream.write_all(b"while busy").unwrap();
    // Quiet while awake: the thread would look at the ring anyway.
    assert!(!rang(p.ring.doorbell().unwrap(), 200), "rang while awake");
    assert!(
        !p.ring.may_sleep(),
        "a receive is waiting for this thread: sleeping now would miss it"
    );
    p.ring.submit().unwrap();
    let got = ready(&mut p.ring);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].received(), Some(&b"while busy"[..]));
    assert!(p.ring.may_sleep(), "nothing is left");
}

#[test]
fn the_threads_own_completions_do_not_ring_while_it_is_awake() {
    let mut p = pair();
    assert!(p.ring.may_sleep());
    p.ring.woke();
    p.ring
        .send(p.socket, bytes::Bytes::from_static(b"ping"), 4)
        .unwrap();
    p.ring.submit().unwrap();
    let mut buf = [0u8; 4];
    p.stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    let sent = next(&mut p.ring);
    assert_eq!((sent.user_data, sent.result), (4, 4));
    assert!(!rang(p.ring.doorbell().unwrap(), 100), "its own send rang");
}
