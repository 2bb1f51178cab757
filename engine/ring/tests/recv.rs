//! Multishot receives into the provided-buffer ring, over real loopback
//! sockets: many small receives share a buffer, what is held is never
//! written over, and buffers come back once everything in them is dropped.

use std::{
    collections::HashMap,
    io::Write,
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};
use uringws_ring::{Completion, Received, Ring, RingConfig, Socket};

const SOCKETS: usize = 64;
const MESSAGE: usize = 64;
const OP_SOCKET: u64 = 1 << 32;
const OP_CONNECT: u64 = 2 << 32;
const OP_RECV: u64 = 3 << 32;

/// Drains completions until `done` says so, or fails after 5 s.
fn until(ring: &mut Ring, mut each: impl FnMut(Completion) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "completions did not arrive");
        ring.wait(Duration::from_millis(50)).unwrap();
        out.clear();
        ring.drain(&mut out, 1024);
        for c in out.drain(..) {
            if each(c) {
                return;
            }
        }
    }
}

/// `SOCKETS` ring sockets connected to the streams of a std listener, each
/// with a multishot receive armed.
fn connected(ring: &mut Ring) -> Vec<TcpStream> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    for i in 0..SOCKETS as u64 {
        ring.tcp_socket(addr, OP_SOCKET | i).unwrap();
    }
    let mut sockets: Vec<Socket> = Vec::new();
    until(ring, |c| {
        assert_eq!(c.user_data & !0xffff_ffff, OP_SOCKET, "{}", c.result);
        sockets.push(c.socket().expect("a socket"));
        sockets.len() == SOCKETS
    });
    for (i, &socket) in sockets.iter().enumerate() {
        ring.connect(socket, addr, OP_CONNECT | i as u64).unwrap();
    }
    ring.submit().unwrap();
    let streams: Vec<TcpStream> = (0..SOCKETS).map(|_| listener.accept().unwrap().0).collect();
    let mut connected = 0;
    until(ring, |c| {
        assert_eq!((c.user_data & !0xffff_ffff, c.result), (OP_CONNECT, 0));
        connected += 1;
        connected == SOCKETS
    });
    for (i, &socket) in sockets.iter().enumerate() {
        ring.recv_multi(socket, OP_RECV | i as u64).unwrap();
    }
    streams
}

/// Writes one message to every stream, then receives them all: what each
/// socket got, as the ring handed it out.
fn round(ring: &mut Ring, streams: &mut [TcpStream], n: usize) -> HashMap<u64, Vec<Received>> {
    for (j, stream) in streams.iter_mut().enumerate() {
        stream.write_all(&message(n, j)).unwrap();
    }
    let mut got: HashMap<u64, Vec<Received>> = HashMap::new();
    let mut bytes = 0;
    until(ring, |mut c| {
        assert_eq!(c.user_data & !0xffff_ffff, OP_RECV);
        assert!(c.result > 0, "receive failed: {:?}", c.error());
        assert!(c.more(), "the multishot receive stopped");
        let data = c.take_received().expect("the bytes received");
        bytes += data.len();
        got.entry(c.user_data & 0xffff_ffff).or_default().push(data);
        bytes == SOCKETS * MESSAGE
    });
    got
}

fn message(round: usize, stream: usize) -> Vec<u8> {
    let mut m = format!("round {round} stream {stream} ").into_bytes();
    m.resize(MESSAGE, b'.');
    m
}

/// What one round delivered, each socket's pieces joined, sorted.
fn contents(got: &HashMap<u64, Vec<Received>>) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = got
        .values()
        .map(|pieces| pieces.iter().flat_map(|p| p.iter().copied()).collect())
        .collect();
    all.sort();
    all
}

fn sent(round: usize) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = (0..SOCKETS).map(|j| message(round, j)).collect();
    all.sort();
    all
}

#[test]
fn small_receives_share_buffers_and_held_ones_are_never_written_over() {
    // Two 4 KiB buffers for 64 sockets that each get 64 bytes at once:
    // with a whole buffer per receive, 62 of them would find the ring dry.
    let mut ring = Ring::new(&RingConfig {
        entries: 256,
        recv_buffers: 2,
        recv_buffer_size: 4096,
        files: 2 * SOCKETS as u32,
        watched: false,
    })
    .unwrap();
    let mut streams = connected(&mut ring);

    // The first round fills one buffer and is held; the second needs the
    // other buffer and must not touch the first.
    let held = round(&mut ring, &mut streams, 0);
    assert_eq!(contents(&held), sent(0));
    let second = round(&mut ring, &mut streams, 1);
    assert_eq!(contents(&second), sent(1));
    assert_eq!(contents(&held), sent(0), "held bytes were written over");
    drop((held, second));

    // Dropped, the buffers go back: rounds go on through 2 × 4 KiB for
    // many times their size.
    for n in 2..40 {
        let got = round(&mut ring, &mut streams, n);
        assert_eq!(contents(&got), sent(n), "round {n}");
    }
}
