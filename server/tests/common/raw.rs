//! A blocking WebSocket client on a plain `std::net::TcpStream`, for tests
//! that need byte-level control (partial frames, resets, tiny writes) or a
//! latency probe with nothing between it and the socket: no runtime, no
//! other tasks on its thread.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use super::WAIT;

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Any key will do; a fixed one keeps the wire bytes reproducible.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// The header of a masked client frame with `len` bytes of payload.
pub fn frame_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend(len.to_be_bytes());
        }
    }
    out.extend(MASK);
    out
}

/// A whole masked client frame.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(opcode, payload.len() as u64);
    out.extend(
        payload
            .iter()
            .zip(MASK.iter().cycle())
            .map(|(byte, mask)| byte ^ mask),
    );
    out
}

/// A TCP connection from `source` (any port) to `addr`: loopback has the
/// whole of 127.0.0.0/8, so a client can stand for another address.
pub fn tcp_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), WAIT)?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    Ok(stream)
}

pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("tcp connect");
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// A frame from the server.
#[derive(Debug)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, 0x8, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    at: usize,
    chunk: Box<[u8]>,
}

/// Status code and head of an HTTP response, and what came after the head.
pub fn read_head(stream: &mut TcpStream) -> io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
            return Ok((status, head, buf[end + 4..].to_vec()));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl RawWs {
    /// Upgrades `stream` on `path`: the 101, or the status of the refusal.
    pub fn upgrade(mut stream: TcpStream, path: &str) -> Result<RawWs, u16> {
        stream
            .write_all(upgrade_request(path).as_bytes())
            .expect("write the upgrade");
        let (status, _, rest) = read_head(&mut stream).expect("an answer to the upgrade");
        if status != 101 {
            return Err(status);
        }
        Ok(RawWs {
            stream,
            buf: rest,
            at: 0,
            chunk: vec![0; 64 << 10].into_boxed_slice(),
        })
    }

    pub fn connect(addr: SocketAddr, path: &str) -> RawWs {
        RawWs::upgrade(tcp(addr), path).unwrap_or_else(|status| panic!("upgrade got {status}"))
    }

    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(opcode, payload))
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        // Into a buffer kept for it: zeroing 64 KiB per read would cost a
        // debug build more than the round trip being measured.
        let n = self.stream.read(&mut self.chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
        Ok(())
    }

    /// The next frame (of any kind), or the error that ended the stream.
    pub fn read_frame(&mut self) -> io::Result<Frame> {
        loop {
            let buf = &self.buf[self.at..];
            if buf.len() >= 2 {
                let opcode = buf[0] & 0x0f;
                let (len, header) = match buf[1] & 0x7f {
                    126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                    127 if buf.len() >= 10 => (
                        u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if header > 0 && buf.len() >= header + len {
                    let payload = buf[header..header + len].to_vec();
                    self.at += header + len;
                    return Ok(Frame { opcode, payload });
                }
            }
            self.fill()?;
        }
    }

    /// The next text or binary frame, answering nothing (the tests run
    /// with pings far apart).
    pub fn read_data(&mut self) -> io::Result<Frame> {
        loop {
            let frame = self.read_frame()?;
            if frame.opcode != 0x9 && frame.opcode != 0xa {
                return Ok(frame);
            }
        }
    }

    /// One round trip: `payload` out as a binary frame, the same back.
    pub fn echo(&mut self, payload: &[u8]) -> Duration {
        let start = Instant::now();
        self.send(0x2, payload).expect("send");
        let frame = self.read_data().expect("the echo");
        let took = start.elapsed();
        assert_eq!(frame.opcode, 0x2);
        assert!(frame.payload == payload, "the echo differs");
        took
    }
}

/// A plain GET: (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tcp(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// Connections open according to `/health`.
pub fn open_connections(addr: SocketAddr) -> u64 {
    let (status, body) = get(addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    health["connections"].as_u64().expect("a count")
}

/// `/health` as JSON, which must be a 200.
pub fn health(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = get(addr, "/health");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Waits (bounded) until `/health` says `status`; returns it.
pub fn wait_health(addr: SocketAddr, status: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let h = health(addr);
        if h["status"] == status {
            return h;
        }
        assert!(started.elapsed() < WAIT, "health never {status}: {h}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node-wide series of `/metrics`, one without labels (the bus's).
pub fn node_metric(addr: SocketAddr, name: &str) -> u64 {
    let (status, page) = get(addr, "/metrics");
    assert_eq!(status, 200);
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .expect("a number")
}

/// The sum over workers of one series of the `/metrics` page.
pub fn metric(addr: SocketAddr, name: &str, labels: &str) -> u64 {
    let (status, page) = get(addr, "/metrics");
    assert_eq!(status, 200);
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Round-trip times of one client, sorted, and their percentiles.
#[derive(Debug, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        assert!(!samples.is_empty());
        samples.sort();
        Latencies(samples)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        let i = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:?} p99 {:?} max {:?} over {}",
            self.p50(),
            self.p99(),
            self.0.last().unwrap(),
            self.0.len()
        )
    }
}
