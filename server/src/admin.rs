//! The optional `admin_listen` address: `/health` and `/metrics` on a port
//! of their own, so they need not be public, and so that a health check
//! still gets its 503 while a shutdown drains (the WebSocket listeners
//! close at once). A small blocking HTTP/1.1 server on its own thread, far
//! from the workers: one short request per connection.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};
use uringws_engine::{
    protocol::{handshake::Request, http::Response},
    EngineHandle,
};

const MAX_HEAD: usize = 8192;
/// A client that sends nothing does not hold the only thread for long.
const TIMEOUT: Duration = Duration::from_secs(5);

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
    pub fn serve(self, engine: EngineHandle, started: Instant) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("uringws-admin".into())
            .spawn(move || {
                for stream in self.0.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(error) = answer(stream, &engine, started) {
                                tracing::debug!(%error, "admin request");
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "admin accept failed");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .map(drop)
    }
}

fn answer(mut stream: TcpStream, engine: &EngineHandle, started: Instant) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let response = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        match Request::parse(&head, MAX_HEAD) {
            Ok(Some(request)) => break route(&request, engine, started),
            Ok(None) => continue,
            Err(error) => break Response::from(&error),
        }
    };
    stream.write_all(&response.encode())
}

fn route(request: &Request<'_>, engine: &EngineHandle, started: Instant) -> Response {
    match (request.method(), request.path()) {
        ("GET", "/health") => crate::health::response(engine, started),
        ("GET", "/metrics") => crate::metrics::response(engine),
        (_, "/health" | "/metrics") => Response::text(405, "use GET"),
        _ => Response::text(404, "the admin listener serves /health and /metrics"),
    }
}
