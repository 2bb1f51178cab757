//! Receive buffers handed on as `Bytes` (`Received::split_to`), over a real
//! loopback socket: a long payload shares the ring's buffer, a short one is
//! copied, at most half the ring is pinned, and a buffer whose last holder
//! is dropped on another thread goes back to the kernel.

use bytes::Bytes;
use std::{io::Write, net::TcpStream};
use uringws_ring::{Received, Ring, SHARE_MIN};

mod common;
use common::{connected, next};

const BUFFERS: u16 = 4;
const BUFFER: usize = 4096;
/// Two to a buffer.
const LONG: usize = BUFFER / 2;

struct Pair {
    ring: Ring,
    stream: TcpStream,
}

fn pair() -> Pair {
    let (ring, _, stream) = connected(BUFFERS, BUFFER, false);
    Pair { ring, stream }
}

impl Pair {
    /// Sends `messages` and receives them, each whole in one `Received`
    /// (as loopback delivers a short write), all held until the last.
    fn exchange(&mut self, messages: &[Vec<u8>]) -> Vec<Received> {
        self.stream.write_all(&messages.concat()).unwrap();
        let want: usize = messages.iter().map(Vec::len).sum();
        let mut got = Vec::new();
        let mut bytes = 0;
        while bytes < want {
            let mut c = next(&mut self.ring);
            assert!(c.result > 0, "receive failed: {:?}", c.error());
            assert!(c.more(), "the multishot receive stopped");
            let data = c.take_received().expect("the bytes received");
            bytes += data.len();
            got.push(data);
        }
        got
    }

    /// One message received, and its payload split off.
    fn split_one(&mut self, message: &[u8]) -> (Bytes, bool) {
        let mut got = self.exchange(&[message.to_vec()]);
        assert_eq!(got.len(), 1, "the message came in pieces");
        let received = &mut got[0];
        let at = received.as_ptr();
        let bytes = received.split_to(message.len());
        assert!(received.is_empty());
        assert_eq!(&bytes[..], message);
        let shared = bytes.as_ptr() == at;
        (bytes, shared)
    }
}

fn message(n: usize, len: usize) -> Vec<u8> {
    let mut m = format!("message {n} ").into_bytes();
    m.resize(len, b'a' + (n % 26) as u8);
    m
}

#[test]
fn a_long_payload_shares_its_buffer_and_a_short_one_is_copied() {
    let mut pair = pair();
    let (long, shared) = pair.split_one(&message(0, LONG));
    assert!(shared, "a {LONG}-byte payload was copied");
    let (short, shared) = pair.split_one(&message(1, SHARE_MIN - 1));
    assert!(!shared, "a short payload pins a buffer");
    // Many rounds through the other buffers leave the shared bytes alone.
    for n in 2..40 {
        drop(pair.exchange(&[message(n, LONG)]));
    }
    assert_eq!(long, message(0, LONG), "shared bytes were written over");
    assert_eq!(short, message(1, SHARE_MIN - 1));
}

#[test]
fn at_most_half_the_ring_is_pinned_and_buffers_dropped_elsewhere_come_back() {
    let mut pair = pair();
    // Four long payloads fill two buffers; held, they pin half the ring.
    let mut held = Vec::new();
    for n in 0..4 {
        let (bytes, shared) = pair.split_one(&message(n, LONG));
        assert!(shared, "payload {n} was copied");
        held.push(bytes);
    }
    // A third buffer is not pinned: the payload in it is copied.
    let (copied, shared) = pair.split_one(&message(4, LONG));
    assert!(!shared, "more than half the ring pinned");
    drop(copied);
    assert!(held.iter().enumerate().all(|(n, b)| *b == message(n, LONG)));

    // Let go on another thread: the ring's thread gives the buffers back,
    // so the ring holds a burst of three and a half buffers at once (the
    // one being filled has half left), and sharing resumes.
    std::thread::spawn(move || drop(held)).join().unwrap();
    // (Receives can run on the way out of any syscall of this thread, the
    // burst's write included: the buffers are back from the next submit.)
    pair.ring.submit().unwrap();
    for round in 0..10 {
        let burst: Vec<Vec<u8>> = (0..2 * BUFFERS as usize - 1)
            .map(|n| message(round * 100 + n, LONG))
            .collect();
        let got = pair.exchange(&burst);
        let joined: Vec<u8> = got.iter().flat_map(|r| r.iter().copied()).collect();
        assert_eq!(joined, burst.concat(), "round {round}");
    }
    let (_, shared) = pair.split_one(&message(5, LONG));
    assert!(shared, "sharing did not resume");
}
