//! The optional `admin_listen` address: `/health` and `/metrics` on a port
//! of their own, so they need not be public, and so that a health check
//! still gets its 503 while a shutdown drains (the WebSocket listeners
//! close at once). A small blocking HTTP/1.1 server on threads of its own,
//! far from the workers: one short request per connection, a few at once.

use crate::bus::Bus;
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use uringws_engine::{
    protocol::{handshake::Request, http::Response},
    EngineHandle,
};

const MAX_HEAD: usize = 8192;
/// The whole exchange, not each read: a client trickling bytes cannot hold
/// a thread past it, and a health check behind it waits at most this.
const DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once, each on its own short-lived thread; past
/// it new ones are closed unanswered rather than queued.
const AT_ONCE: usize = 8;

/// Binds now, so a taken port fails the start; serves once `engine` runs.
pub struct Admin(TcpListener);

impl Admin {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Admin> {
        TcpListener::bind(addr).map(Admin)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Serves until the process exits.
    pub fn serve(
        self,
        engine: EngineHandle,
        bus: Option<Bus>,
        started: Instant,
    ) -> std::io::Result<()> {
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("uringws-admin".into())
            .spawn(move || {
                for stream in self.0.incoming() {
                    let stream = match stream {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::warn!(%error, "admin accept failed");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if busy.fetch_add(1, Ordering::AcqRel) >= AT_ONCE {
                        busy.fetch_sub(1, Ordering::AcqRel);
                        continue;
                    }
                    let (engine, bus, done) = (engine.clone(), bus.clone(), busy.clone());
                    let spawned = std::thread::Builder::new()
                        .name("uringws-admin-conn".into())
                        .spawn(move || {
                            if let Err(error) = answer(stream, &engine, bus.as_ref(), started) {
                                tracing::debug!(%error, "admin request");
                            }
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        busy.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })
            .map(drop)
    }
}

fn answer(
    mut stream: TcpStream,
    engine: &EngineHandle,
    bus: Option<&Bus>,
    started: Instant,
) -> std::io::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let response = loop {
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        match Request::parse(&head, MAX_HEAD) {
            Ok(Some(request)) => break route(&request, engine, bus, started),
            Ok(None) => continue,
            Err(error) => break Response::from(&error),
        }
    };
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(&response.encode())
}

fn route(
    request: &Request<'_>,
    engine: &EngineHandle,
    bus: Option<&Bus>,
    started: Instant,
) -> Response {
    match (request.method(), request.path()) {
        ("GET", "/health") => crate::health::response(engine, bus, started),
        ("GET", "/metrics") => crate::metrics::response(engine, bus),
        (_, "/health" | "/metrics") => Response::text(405, "use GET"),
        _ => Response::text(404, "the admin listener serves /health and /metrics"),
    }
}
