//! Abuse against the real `uringws` binary (two workers) over loopback:
//! many connections from one address, handshakes that never finish,
//! oversized request heads. Each is answered as server/README.md says,
//! and meanwhile a client from another address sees its echo latency
//! within twice what it was before the abuse (plus a floor, below).
//! docs/reliability.md, "Abuse", has the numbers.

mod common;

use common::{raw::*, Server, WAIT};
use std::{
    io::{ErrorKind, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

/// Round trips per measurement.
const SAMPLES: usize = 2000;

/// What the loaded p99 may exceed twice the unloaded one by. The probe's
/// round trips on loopback take 30 to 70 us at the median and 50 to 200
/// us at p99 here (release and debug builds), and that p99 (the 20th
/// worst of 2,000) is decided by a handful of scheduler preemptions: on
/// a shared two-core machine one preemption of the probe or of a worker
/// costs up to a millisecond or more. Without a floor, twice a 60 us p99
/// would fail on the machine's noise rather than on the server; with it,
/// a server whose abuse costs its other clients a millisecond now and
/// then still fails (a 2 ms stall per refused upgrade fails at once).
const FLOOR: Duration = Duration::from_millis(1);

const ABUSER: &str = "127.0.0.1";
/// The probe's own address: per-IP limits on the abuser's do not touch it.
const PROBE: &str = "127.0.0.2";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The latency probe: an echo client from `PROBE`, warmed up.
fn probe(addr: SocketAddr) -> RawWs {
    let stream = tcp_from(ip(PROBE), addr).expect("the probe connects");
    let mut ws = RawWs::upgrade(stream, "/echo").expect("the probe upgrades");
    for _ in 0..200 {
        ws.echo(&[7; 64]);
    }
    ws
}

/// A pause before each round trip: the probe is a client among others,
/// not one that keeps a worker busy by itself, and its 2,000 round trips
/// span some 400 ms of the abuse rather than 50.
const GAP: Duration = Duration::from_micros(100);

/// One round trip of 64 bytes, after `GAP`.
fn round_trip(ws: &mut RawWs) -> Duration {
    thread::sleep(GAP);
    ws.echo(&[0x42; 64])
}

/// Rounds of a measurement at most.
const ROUNDS: usize = 3;

/// Runs `round` (the abuse with the probe measuring: unloaded, loaded,
/// and what the abuse found) until the loaded p99 is within twice the
/// unloaded one plus `FLOOR`, at most `ROUNDS` times; what each abuse
/// found. A server that holds up its other clients does so in every
/// round; the machine's other work (this one is shared) seldom weighs on
/// one side of a round alone, and not three times running.
fn within_twice<T>(what: &str, mut round: impl FnMut() -> (Latencies, Latencies, T)) -> Vec<T> {
    let mut found = Vec::new();
    for n in 1..=ROUNDS {
        let (unloaded, loaded, result) = round();
        found.push(result);
        eprintln!("{what}, round {n}: unloaded {unloaded}; during the abuse {loaded}");
        if loaded.p99() <= unloaded.p99() * 2 + FLOOR {
            return found;
        }
    }
    panic!(
        "{what}: the probe's p99 was over twice the unloaded one plus {FLOOR:?} in {ROUNDS} rounds"
    );
}

/// Round trips per block of the interleaved measurement.
const BLOCK: usize = 100;

/// Tells an abuser when to go, and learns how far it got.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    active: AtomicBool,
    /// The abuser saw it was paused and made no attempt since.
    idle: AtomicBool,
    attempts: AtomicUsize,
}

impl Control {
    /// Waits for the abuser's next turn: paced to `per_second` while it
    /// is active, none while it is paused. `None` once told to stop;
    /// otherwise the attempt's number.
    fn turn(&self, due: &mut Instant, per_second: f64) -> Option<usize> {
        let period = Duration::from_secs_f64(1.0 / per_second);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            if !self.active.load(Ordering::SeqCst) {
                self.idle.store(true, Ordering::SeqCst);
                // Seldom: a paused abuser's own wake-ups weigh on the
                // unloaded side.
                thread::sleep(Duration::from_millis(1));
                // No burst to catch up after a pause.
                *due = Instant::now();
                continue;
            }
            self.idle.store(false, Ordering::SeqCst);
            let now = Instant::now();
            if now >= *due {
                *due += period;
                return Some(self.attempts.fetch_add(1, Ordering::SeqCst));
            }
            thread::sleep(*due - now);
        }
    }
}

/// Polls `cond` every 100 us for at most `WAIT`.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "timed out waiting until {what}");
        thread::sleep(Duration::from_micros(100));
    }
}

/// Runs `abuse` on its own thread (it takes its turns from the `Control`
/// it is handed) and measures the probe in blocks of `BLOCK` round trips,
/// alternately with the abuse paused and going, until each side has
/// `SAMPLES`: what else runs on the machine meanwhile weighs on both
/// sides alike. (unloaded, loaded, what the abuse returned).
fn interleaved<T: Send + 'static>(
    ws: &mut RawWs,
    abuse: impl FnOnce(Arc<Control>) -> T + Send + 'static,
) -> (Latencies, Latencies, T) {
    let control = Arc::new(Control::default());
    let abuser = {
        let control = control.clone();
        thread::spawn(move || abuse(control))
    };
    let (mut quiet, mut loud) = (Vec::new(), Vec::new());
    while quiet.len() < SAMPLES {
        assert!(!abuser.is_finished(), "the abuser stopped early");
        control.active.store(false, Ordering::SeqCst);
        wait_for("the abuse pauses", || control.idle.load(Ordering::SeqCst));
        quiet.extend((0..BLOCK).map(|_| round_trip(ws)));
        let attempts = control.attempts.load(Ordering::SeqCst);
        control.active.store(true, Ordering::SeqCst);
        wait_for("the abuse resumes", || {
            control.attempts.load(Ordering::SeqCst) > attempts || abuser.is_finished()
        });
        loud.extend((0..BLOCK).map(|_| round_trip(ws)));
    }
    control.stop.store(true, Ordering::SeqCst);
    let result = abuser.join().expect("the abuse saw what it expected");
    (Latencies::new(quiet), Latencies::new(loud), result)
}

/// `SAMPLES` round trips with nothing else going on.
fn unloaded(ws: &mut RawWs) -> Latencies {
    Latencies::new((0..SAMPLES).map(|_| round_trip(ws)).collect())
}

/// Round trips from when `wave` (on its own thread) begins until it ends,
/// `SAMPLES` at least.
fn during<T: Send + 'static>(
    ws: &mut RawWs,
    wave: impl FnOnce() -> T + Send + 'static,
) -> (Latencies, T) {
    let abuser = thread::spawn(wave);
    let mut samples = Vec::new();
    while samples.len() < SAMPLES || !abuser.is_finished() {
        samples.push(round_trip(ws));
    }
    let result = abuser.join().expect("the abuse saw what it expected");
    (Latencies::new(samples), result)
}

/// Reads an answer to the end: status and body.
fn answer(stream: &mut TcpStream) -> (u16, String) {
    let (status, _, mut rest) = read_head(stream).expect("an answer");
    stream
        .read_to_end(&mut rest)
        .expect("the end of the answer");
    (status, String::from_utf8_lossy(&rest).into_owned())
}

#[test]
fn many_connections_from_one_address_get_429_past_the_limit_while_others_echo_as_fast() {
    const LIMIT: usize = 50;
    let server = Server::start(&["--max-connections-per-ip", "50"]);
    let addr = server.addr;
    let mut ws = probe(addr);

    // The abuser holds its 50 and asks for more, 1,000 a second.
    let held: Vec<RawWs> = (0..LIMIT)
        .map(|_| RawWs::upgrade(tcp_from(ip(ABUSER), addr).unwrap(), "/echo").expect("101"))
        .collect();
    let refused: usize = within_twice(
        "50 connections held, 1,000 more asked for per second from one address",
        || {
            interleaved(&mut ws, move |control| {
                let mut due = Instant::now();
                let mut refused = 0;
                while let Some(n) = control.turn(&mut due, 1000.0) {
                    let mut stream = tcp_from(ip(ABUSER), addr).expect("connect");
                    stream
                        .write_all(upgrade_request("/echo").as_bytes())
                        .unwrap();
                    let (status, body) = answer(&mut stream);
                    assert_eq!(status, 429, "attempt {n}: {body}");
                    assert!(body.contains("too many connections"), "{body}");
                    refused += 1;
                }
                refused
            })
        },
    )
    .into_iter()
    .sum();
    eprintln!("{refused} upgrades refused");
    assert!(refused >= 20, "{refused}");
    assert_eq!(open_connections(addr), LIMIT as u64 + 1);
    assert_eq!(
        metric(addr, "uringws_handshakes_total", "result=\"429\""),
        refused as u64
    );
    // The refusals left the connections held alone.
    for mut ws in held {
        ws.echo(b"still here");
    }
    // The log says so a few times, then counts.
    let lines = server.logged("request refused");
    assert!((1..=20).contains(&lines.len()), "{} lines", lines.len());
    assert!(lines[0].contains("status=429"), "{}", lines[0]);
}

/// Opens `SOCKETS` connections from the abuser's address that never
/// finish a head: half send nothing, half the start of one. Checks that
/// all are still open shortly before the timeout and dropped without an
/// answer by a second after it. (when the last was opened, when the last
/// was found dropped.)
fn unfinished_handshakes(addr: SocketAddr, timeout: Duration) -> (Instant, Instant) {
    let first = Instant::now();
    let mut sockets = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        let mut stream = tcp_from(ip(ABUSER), addr).expect("connect");
        if i % 2 == 1 {
            stream
                .write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: webs")
                .unwrap();
        }
        sockets.push(stream);
    }
    let opened = Instant::now();
    if let Some(wait) =
        (first + timeout - Duration::from_millis(150)).checked_duration_since(Instant::now())
    {
        thread::sleep(wait);
    }
    for (i, stream) in sockets.iter_mut().enumerate() {
        stream.set_nonblocking(true).unwrap();
        match stream.read(&mut [0u8; 1]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("socket {i} ended before the timeout: {other:?}"),
        }
        stream.set_nonblocking(false).unwrap();
    }
    for (i, stream) in sockets.iter_mut().enumerate() {
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "socket {i} was answered: {rest:?}"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("socket {i}: {e}"),
        }
    }
    let dropped = Instant::now();
    assert!(
        dropped < opened + timeout + Duration::from_secs(1),
        "the last socket was dropped {:?} after the last connect (timeout {timeout:?})",
        dropped - opened
    );
    eprintln!(
        "{SOCKETS} sockets opened in {:?}, all dropped {:?} after the first",
        opened - first,
        dropped - first
    );
    (opened, dropped)
}

const SOCKETS: usize = 500;

#[test]
fn handshakes_that_never_finish_are_dropped_at_the_timeout_while_others_echo_as_fast() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = Server::start(&["--handshake-timeout", "1"]);
    let addr = server.addr;
    let mut ws = probe(addr);

    // The probe measures from the first connect until the last socket is
    // found dropped, the timeouts firing together included.
    let rounds = within_twice("500 handshakes left unfinished until the timeout", || {
        let unloaded = unloaded(&mut ws);
        let (loaded, times) = during(&mut ws, move || unfinished_handshakes(addr, TIMEOUT));
        (unloaded, loaded, times)
    });
    assert_eq!(
        metric(addr, "uringws_handshakes_total", "result=\"timeout\""),
        (SOCKETS * rounds.len()) as u64,
        "every one counted"
    );
    assert_eq!(open_connections(addr), 1, "only the probe");
    ws.echo(b"after");
}

#[test]
fn oversized_heads_get_431_while_others_echo_as_fast() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let mut ws = probe(addr);

    // 500 a second, alternately a whole upgrade request with a header
    // that takes it past max_head (8 KiB), and a head past it that never
    // ends, which is refused as soon as it passes the limit.
    let filler = "x".repeat(9000);
    let whole = Arc::new(format!(
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    let endless = Arc::new(format!(
        "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Filler: {filler}"
    ));
    let refused: usize = within_twice("500 oversized request heads a second", || {
        let (whole, endless) = (whole.clone(), endless.clone());
        interleaved(&mut ws, move |control| {
            let mut due = Instant::now();
            let mut refused = 0;
            while let Some(n) = control.turn(&mut due, 500.0) {
                let mut stream = tcp_from(ip(ABUSER), addr).expect("connect");
                let head = if n % 2 == 0 { &whole } else { &endless };
                // The server may answer and close before it has read all
                // of it, and a write into a closed connection then fails.
                let _ = stream.write_all(head.as_bytes());
                match read_head(&mut stream) {
                    Ok((status, head, _)) => assert_eq!(status, 431, "attempt {n}: {head}"),
                    // The rest of the head, unread, made the close a
                    // reset, which can overtake the answer.
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                    Err(e) => panic!("attempt {n}: {e}"),
                }
                refused += 1;
            }
            refused
        })
    })
    .into_iter()
    .sum();
    eprintln!("{refused} oversized heads refused");
    assert!(refused >= 10, "{refused}");
    assert_eq!(
        metric(addr, "uringws_handshakes_total", "result=\"431\""),
        refused as u64,
        "every one answered 431"
    );
    assert_eq!(open_connections(addr), 1, "only the probe");
}
