//! What the ring's socket tests share: a ring with one socket connected
//! over loopback to a plain `TcpStream`, and waiting for a completion.
//! Each test file uses its own part of it.
#![allow(dead_code)]

use std::{
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};
use uringws_ring::{Completion, Ring, RingConfig, Socket};

/// A ring of `buffers` receive buffers of `size` bytes, its socket
/// connected to the returned stream and receiving (multishot, user_data 3).
pub fn connected(buffers: u16, size: usize, watched: bool) -> (Ring, Socket, TcpStream) {
    let mut ring = Ring::new(&RingConfig {
        entries: 64,
        recv_buffers: buffers,
        recv_buffer_size: size,
        files: 4,
        watched,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    ring.tcp_socket(addr, 1).unwrap();
    let socket = next(&mut ring).socket().expect("a socket");
    ring.connect(socket, addr, 2).unwrap();
    ring.submit().unwrap();
    let stream = listener.accept().unwrap().0;
    assert_eq!(next(&mut ring).result, 0, "connect");
    ring.recv_multi(socket, 3).unwrap();
    ring.submit().unwrap();
    (ring, socket, stream)
}

/// The next completion, waiting in the kernel for at most 5 s.
pub fn next(ring: &mut Ring) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no completion");
        ring.wait(Duration::from_millis(50)).unwrap();
        ring.drain(&mut out, 1);
        if let Some(c) = out.pop() {
            return c;
        }
    }
}

/// The completions ready now, without entering the kernel.
pub fn ready(ring: &mut Ring) -> Vec<Completion> {
    let mut out = Vec::new();
    ring.drain(&mut out, 16);
    out
}
