//! Faults against the real `uringws` binary (two workers) over loopback:
//! a client reset in the middle of a frame, a 16 MiB frame written a few
//! bytes at a time, and SIGTERM under load. docs/reliability.md, "Faults",
//! says what each shows.

mod common;

use common::{raw::*, Server, WAIT};
use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

/// Polls `cond` every 10 ms until it holds, for at most `WAIT`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A client echoing on its own thread until told to stop: how many
/// round trips it made, readable while it runs.
struct Bystander {
    echoes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl Bystander {
    fn start(server: &Server) -> Bystander {
        let mut ws = RawWs::connect(server.addr, "/echo");
        let echoes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (echoes.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let payload: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
            while !stopped.load(Ordering::Relaxed) {
                ws.echo(&payload);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Bystander {
            echoes,
            stop,
            thread,
        }
    }

    fn echoes(&self) -> usize {
        self.echoes.load(Ordering::Relaxed)
    }

    /// Waits for `more` echoes beyond the count now.
    fn wait_for_more(&self, more: usize) {
        let target = self.echoes() + more;
        wait_until("the bystander echoes", || self.echoes() >= target);
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the bystander never failed");
        self.echoes.load(Ordering::Relaxed)
    }
}

#[test]
fn a_client_reset_mid_frame_is_freed_and_logged_once_while_another_echoes() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let bystander = Bystander::start(&server);
    bystander.wait_for_more(20);
    assert_eq!(open_connections(addr), 1);

    let mut victim = RawWs::connect(addr, "/echo");
    assert_eq!(open_connections(addr), 2);
    let received = metric(addr, "uringws_bytes_received_total", "");
    // The header of a 1 MiB frame and 100 KB of its payload.
    let wire = client_frame(0x2, &vec![0x5a; 1 << 20]);
    let sent = 14 + 100_000;
    victim.stream.write_all(&wire[..sent]).unwrap();
    // Reset only once the server holds the partial frame.
    wait_until("the server read the partial frame", || {
        metric(addr, "uringws_bytes_received_total", "") >= received + sent as u64
    });
    socket2::SockRef::from(&victim.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(victim);
    let reset_at = bystander.echoes();

    wait_until("the connection is freed", || open_connections(addr) == 1);
    server.wait_logged("connection closed abnormally", 1);
    bystander.wait_for_more(50);
    // Time for a second line, had the close been reported twice.
    thread::sleep(Duration::from_millis(200));
    let lines = server.logged("connection closed abnormally");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(line.contains("code=1006"), "{line}");
    assert!(line.contains("connection lost"), "{line}");

    let echoes = bystander.finish();
    assert!(
        echoes > reset_at + 50,
        "the bystander went on: {reset_at} echoes at the reset, {echoes} in all"
    );
    wait_until("no connection left", || open_connections(addr) == 0);
}

/// Writes `wire` in tiny pieces and reads the echo: the frame and how
/// long the round trip took. The first `PACED` bytes (the header and the
/// start of the payload) go one per write 1 ms apart, so that the server,
/// idle meanwhile, reads each alone; the next `BYTEWISE` one per write as
/// fast as they go; the rest `CHUNK` bytes per write. TCP_NODELAY is on:
/// each write is a segment.
fn tiny_writes(ws: &mut RawWs, wire: &[u8]) -> (Frame, Duration) {
    let started = Instant::now();
    let (paced, rest) = wire.split_at(PACED);
    for byte in paced.chunks(1) {
        ws.stream.write_all(byte).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let (bytewise, rest) = rest.split_at(BYTEWISE);
    for byte in bytewise.chunks(1) {
        ws.stream.write_all(byte).unwrap();
    }
    for piece in rest.chunks(CHUNK) {
        ws.stream.write_all(piece).unwrap();
    }
    let frame = ws
        .read_data()
        .unwrap_or_else(|e| panic!("no echo within {WAIT:?} of the last write: {e}"));
    (frame, started.elapsed())
}

const PACED: usize = 64;
const BYTEWISE: usize = 64 << 10;
const CHUNK: usize = 256;

fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + j / 251) as u8).collect()
}

/// Text of `len` bytes, a third of its characters of two to four bytes:
/// written a byte at a time, most characters arrive split over reads.
fn text(len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len);
    for c in ['a', 'é', 'b', '€', 'c', '𝄞'].into_iter().cycle() {
        if out.len() + c.len_utf8() > len {
            break;
        }
        out.push(c);
    }
    while out.len() < len {
        out.push('z');
    }
    out.into_bytes()
}

/// What the server spent on one frame.
struct Cost {
    writes: usize,
    wall: Duration,
    cpu: Duration,
    peak_growth: usize,
}

/// Sends `payload` as one frame of `opcode` in tiny writes, checks the
/// echo is the same, and says what it cost the server.
fn echo_in_tiny_writes(server: &Server, ws: &mut RawWs, opcode: u8, payload: &[u8]) -> Cost {
    let wire = client_frame(opcode, payload);
    server.reset_peak_rss();
    let (rss_before, _) = server.rss();
    let cpu_before = server.cpu_time();
    let (echo, wall) = tiny_writes(ws, &wire);
    let cpu = server.cpu_time() - cpu_before;
    let (_, peak) = server.rss();
    assert_eq!(echo.opcode, opcode);
    assert_eq!(echo.payload.len(), payload.len());
    assert!(echo.payload == payload, "the echo differs");
    Cost {
        writes: PACED + BYTEWISE + (wire.len() - PACED - BYTEWISE).div_ceil(CHUNK),
        wall,
        cpu,
        peak_growth: peak.saturating_sub(rss_before),
    }
}

#[test]
fn a_16_mib_frame_in_tiny_writes_is_echoed_whole_in_linear_time_and_memory() {
    const MAX_FRAME: usize = 16 << 20;
    // The defaults: a 16 MiB frame is the largest accepted.
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(server.addr, "/echo");

    for (opcode, make) in [(0x2, binary as fn(usize) -> Vec<u8>), (0x1, text)] {
        // The same writes for 1 MiB first: the cost per write to compare
        // with.
        let small = echo_in_tiny_writes(&server, &mut ws, opcode, &make(1 << 20));
        let large = echo_in_tiny_writes(&server, &mut ws, opcode, &make(MAX_FRAME));
        eprintln!(
            "opcode {opcode}: 16 MiB in {} writes, {:?}, server CPU {:?}, peak RSS +{} MiB; \
             1 MiB in {} writes, {:?}, server CPU {:?}",
            large.writes,
            large.wall,
            large.cpu,
            large.peak_growth >> 20,
            small.writes,
            small.wall,
            small.cpu,
        );
        // Linear: 16 times the bytes (and fewer than 16 times the writes)
        // cost the server at most twice 16 times the CPU time. One that
        // went over what it had buffered on each read (8 MiB on average,
        // thousands of times) would spend seconds more. The floor covers
        // the 10 ms ticks of the count.
        let allowed = small.cpu * 32 + Duration::from_millis(200);
        assert!(
            large.cpu <= allowed,
            "the server spent {:?} on 16 MiB in {} writes, {:?} on 1 MiB in {}",
            large.cpu,
            large.writes,
            small.cpu,
            small.writes
        );
        // The frame in and its echo out (one buffer or two), and room for
        // the allocator: not a copy per read.
        assert!(
            large.peak_growth < 3 * MAX_FRAME,
            "RSS grew by {} MiB for a 16 MiB frame",
            large.peak_growth >> 20
        );
    }

    // One byte more is refused on its header, with 1009.
    let mut ws = RawWs::connect(server.addr, "/echo");
    ws.stream
        .write_all(&frame_header(0x2, MAX_FRAME as u64 + 1))
        .unwrap();
    let close = ws.read_frame().expect("a close frame");
    assert_eq!(close.close_code(), Some(1009), "{close:?}");
}

/// Messages a load client keeps in flight.
const WINDOW: usize = 4;

/// Message `i`: its number, then a filler of a length that varies.
fn numbered(i: usize) -> Vec<u8> {
    let mut message = (i as u64).to_be_bytes().to_vec();
    message.resize(8 + (i * 37) % 3000, (i % 251) as u8);
    message
}

/// What one load client saw.
#[derive(Debug)]
struct Seen {
    sent: usize,
    echoed: usize,
    /// When the oldest message that never came back was written.
    unanswered_since: Option<Instant>,
    close: Option<u16>,
}

/// Keeps `WINDOW` numbered messages in flight and checks each echo (in
/// order, whole) until the server's close frame, which it answers before
/// reading on to the end of the connection.
fn load_client(mut ws: RawWs, echoes: Arc<AtomicUsize>) -> Seen {
    let mut in_flight = std::collections::VecDeque::new();
    let (mut sent, mut echoed) = (0, 0);
    loop {
        while in_flight.len() < WINDOW {
            ws.send(0x2, &numbered(sent)).expect("send");
            in_flight.push_back(Instant::now());
            sent += 1;
        }
        let frame = ws.read_frame().expect("an echo or a close");
        match frame.opcode {
            0x2 => {
                assert!(
                    frame.payload == numbered(echoed),
                    "echo {echoed} differs or is out of order"
                );
                echoed += 1;
                in_flight.pop_front();
                echoes.fetch_add(1, Ordering::Relaxed);
            }
            0x8 => {
                let close = frame.close_code();
                ws.send(0x8, &frame.payload).expect("the close reply");
                let end = ws.read_frame();
                assert!(end.is_err(), "nothing after the close: {end:?}");
                return Seen {
                    sent,
                    echoed,
                    unanswered_since: in_flight.front().copied(),
                    close,
                };
            }
            0x9 | 0xa => {}
            other => panic!("unexpected opcode {other}"),
        }
    }
}

/// Load clients on their threads, started once each made `ECHOES` echoes.
fn start_load(server: &Server, clients: usize) -> Vec<thread::JoinHandle<Seen>> {
    let counts: Vec<Arc<AtomicUsize>> = (0..clients).map(|_| Arc::default()).collect();
    let threads = counts
        .iter()
        .map(|echoes| {
            let ws = RawWs::connect(server.addr, "/echo");
            let echoes = echoes.clone();
            thread::spawn(move || load_client(ws, echoes))
        })
        .collect();
    wait_until("every client is echoing", || {
        counts.iter().all(|n| n.load(Ordering::Relaxed) >= ECHOES)
    });
    threads
}

/// Echoes each load client makes before the signal.
const ECHOES: usize = 50;

/// Every client got close 1001 after the echo of every message the
/// server had time to read before the signal.
fn check_load(threads: Vec<thread::JoinHandle<Seen>>, signalled: Instant) -> usize {
    let mut echoed = 0;
    for client in threads {
        let seen = client.join().expect("the client saw nothing wrong");
        assert_eq!(seen.close, Some(1001), "{seen:?}");
        assert!(seen.echoed >= ECHOES, "{seen:?}");
        assert!(seen.sent - seen.echoed <= WINDOW, "{seen:?}");
        // A message read by the server after it began draining is
        // dropped (the close frame before it said so); one written well
        // before the signal was read before it.
        if let Some(since) = seen.unanswered_since {
            assert!(
                since + Duration::from_millis(200) > signalled,
                "a message written {:?} before the signal never came back: {seen:?}",
                signalled.saturating_duration_since(since)
            );
        }
        echoed += seen.echoed;
    }
    echoed
}

/// The number after `name` in a log line.
fn field(line: &str, name: &str) -> usize {
    line.split(name)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

/// The workers' `draining` lines: how many connections each was closing.
fn draining(server: &Server) -> usize {
    server
        .wait_logged("draining", 2)
        .iter()
        .map(|line| field(line, "connections="))
        .sum()
}

#[test]
fn sigterm_under_load_closes_every_client_with_1001_and_exits_0_at_once() {
    const CLIENTS: usize = 16;
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
    let mut server = Server::start(&["--shutdown-timeout", "5"]);
    let threads = start_load(&server, CLIENTS);

    let signalled = Instant::now();
    server.signal_term();
    let status = server.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(1));
    let exited = signalled.elapsed();
    assert!(status.success(), "{status}");
    // Every client answers its close at once: nothing to wait for.
    assert!(
        exited < Duration::from_secs(1),
        "exited {exited:?} after SIGTERM although every client answered"
    );
    let echoed = check_load(threads, signalled);
    eprintln!("{echoed} echoes; exited {exited:?} after SIGTERM");

    server.wait_logged("exiting", 1);
    assert_eq!(server.logged("signal received").len(), 1);
    assert_eq!(draining(&server), CLIENTS);
    let drained = server.logged("drained");
    assert_eq!(drained.len(), 2, "{drained:?}");
    assert!(server.logged("cutting").is_empty());
    assert!(
        server.logged("closed abnormally").is_empty(),
        "{:?}",
        server.logged("closed abnormally")
    );
    // Nobody is let in after the exit either: the listeners are gone.
    assert!(std::net::TcpStream::connect_timeout(&server.addr, WAIT).is_err());
}

#[test]
fn sigterm_with_a_client_that_never_answers_refuses_newcomers_and_exits_0_at_the_timeout() {
    const CLIENTS: usize = 8;
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
    let mut server = Server::start(&["--shutdown-timeout", "2"]);
    // Neither reads nor answers: it holds the shutdown up to its timeout.
    let mut mute = RawWs::connect(server.addr, "/echo");
    let threads = start_load(&server, CLIENTS);

    let signalled = Instant::now();
    server.signal_term();
    assert_eq!(draining(&server), CLIENTS + 1);
    let echoed = check_load(threads, signalled);
    assert!(signalled.elapsed() < SHUTDOWN_TIMEOUT);
    assert_eq!(server.exited(), None, "it waits for the mute client");

    // Every worker is draining: a newcomer is refused, or reset, or
    // answered without a 101.
    match tcp_from("127.0.0.1".parse().unwrap(), server.addr) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(mut stream) => {
            let _ = stream.write_all(upgrade_request("/echo").as_bytes());
            if let Ok((status, head, _)) = read_head(&mut stream) {
                assert_ne!(status, 101, "upgraded during the shutdown: {head}");
            }
        }
    }

    let status = server.wait_exit(SHUTDOWN_TIMEOUT + Duration::from_secs(2));
    let exited = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        exited >= SHUTDOWN_TIMEOUT && exited < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "exited {exited:?} after SIGTERM, shutdown timeout {SHUTDOWN_TIMEOUT:?}"
    );
    // The mute client's close frame was there for it all along.
    let close = mute.read_frame().expect("the close frame");
    assert_eq!(close.close_code(), Some(1001));
    assert!(mute.read_frame().is_err(), "then the end");
    eprintln!("{echoed} echoes; exited {exited:?} after SIGTERM");

    server.wait_logged("exiting", 1);
    // One worker drained, the other cut its one socket at the timeout;
    // between them they closed every load client.
    let cut = server.logged("cutting the sockets still open");
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert!(cut[0].contains("cut=1"), "{}", cut[0]);
    let drained = server.logged("drained");
    assert_eq!(
        drained.len(),
        1,
        "only the worker that drained: {drained:?}"
    );
    let closed: usize = [&cut[0], &drained[0]]
        .iter()
        .map(|line| field(line, "closed="))
        .sum();
    assert_eq!(closed, CLIENTS, "{cut:?} {drained:?}");
}

#[test]
fn silent_connections_are_pinged_and_one_that_never_answers_is_closed_and_counted() {
    // Two idle clients: one answers the server's pings, one reads nothing
    // and so answers nothing. Both show in the ping counters, and only the
    // silent one is closed (1001, counted as a ping timeout, not idle).
    let server = Server::start(&["--ping-interval", "0.3", "--idle-timeout", "0"]);
    let mut answering = RawWs::connect(server.addr, "/echo");
    let mut silent = RawWs::connect(server.addr, "/echo");
    answering
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut pongs = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        match answering.read_frame() {
            Ok(frame) if frame.opcode == 0x9 => {
                answering.send(0xa, &frame.payload).expect("pong");
                pongs += 1;
            }
            Ok(frame) => panic!("unexpected frame {frame:?}"),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the answering client lost its connection: {e}"),
        }
    }
    assert!(pongs >= 3, "{pongs} pings in 1.5 s at 0.3 s of silence");
    // The silent one got its ping, then the close.
    let ping = silent.read_frame().expect("a ping");
    assert_eq!(ping.opcode, 0x9);
    let close = silent.read_frame().expect("a close");
    assert_eq!(close.close_code(), Some(1001));
    silent.send(0x8, &close.payload).expect("our close");
    wait_until("the silent one is gone", || {
        open_connections(server.addr) == 1
    });
    let pings = metric(server.addr, "uringws_pings_sent_total", "");
    assert!(pings > pongs, "{pings} pings counted, {pongs} answered + 1");
    assert_eq!(metric(server.addr, "uringws_ping_timeouts_total", ""), 1);
    assert_eq!(metric(server.addr, "uringws_idle_timeouts_total", ""), 0);
}
