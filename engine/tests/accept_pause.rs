//! With `peer_addresses` off a worker accepts with one multishot accept,
//! which takes the whole backlog in one go, while the file table has room
//! for that; nearer full it switches to single-shot accepts, which pause
//! and leave new connections in the listen backlog: an accept the kernel
//! completes without a free entry closes the connection, so the client
//! would get nothing at all. Once connections leave, accepting resumes
//! and the waiting ones are served.

mod common;

use common::*;
use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};
use uringws_engine::EngineConfig;

/// 100 connections per worker: a table of 356 entries. With a backlog of
/// 128, multishot up to 68 in use (room for the backlog twice and a
/// margin), then single-shot accepts pausing at 348 and resuming below 344
/// (see `capacity` in the worker and `Accepts::size_for`).
const MAX: usize = 100;
const BACKLOG: i32 = 128;
const CLIENTS: usize = 380;

/// Whether the server ended `stream` (end of stream or reset); false while
/// it is open and silent.
fn ended(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the server sent something before a request"),
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

fn upgraded(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if stream.write_all(upgrade_request("/").as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    head.starts_with(b"HTTP/1.1 101 ")
}

#[test]
fn multishot_accept_pauses_on_a_full_table_and_resumes() {
    let server = TestServer::start_with_workers(
        EngineConfig {
            peer_addresses: false,
            max_connections_per_worker: MAX,
            backlog: BACKLOG,
            handshake_timeout: Duration::from_secs(30),
            ..test_config()
        },
        Hooks::default(),
        1,
    );
    // More silent connections than the table holds (but no more than the
    // backlog can keep waiting): the kernel completes each TCP handshake
    // into the backlog whether or not it is accepted.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Time for the worker to accept all it will, and for an accept without
    // a free entry (what the pause prevents) to close a connection.
    std::thread::sleep(Duration::from_millis(500));
    let ended_early = clients.iter().filter(|c| ended(c)).count();
    assert_eq!(
        ended_early, 0,
        "connections closed for want of a file entry"
    );

    // The first 150 leave: below the resume mark, the worker accepts again,
    // and the ones that waited in the backlog are served.
    clients.drain(..150);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waiting: Vec<TcpStream> = clients.split_off(clients.len() - 50);
    let mut served = 0;
    for stream in &mut waiting {
        assert!(Instant::now() < deadline, "accepts did not resume in time");
        assert!(
            upgraded(stream),
            "a connection from the backlog was not served"
        );
        served += 1;
    }
    assert_eq!(served, 50);
    // Those accepted before the pause were kept all along.
    assert_eq!(clients.iter().filter(|c| ended(c)).count(), 0);
    wait_until_sync(Duration::from_secs(5), || server.recorder.opens() == 50);

    // All gone: multishot comes back, and new connections are served.
    drop((clients, waiting));
    wait_until_sync(Duration::from_secs(5), || {
        server.recorder.closes().len() == 50
    });
    for _ in 0..60 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        assert!(upgraded(&mut stream), "a new connection was not served");
    }
    assert_eq!(server.recorder.opens(), 110);
}

fn wait_until_sync(within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}
