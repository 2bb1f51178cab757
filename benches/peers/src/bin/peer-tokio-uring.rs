//! tokio-uring echo server: every text and binary message back as it came.
//!
//! tokio-uring 0.5 has no WebSocket layer, so this is a hand-rolled minimal
//! server: the handshake, frame decoding and encoding and the close
//! handshake are `uringws-protocol`'s (sans-IO, the same code uringws runs),
//! and tokio-uring does the I/O — one `read` in flight per connection into
//! a buffer the connection owns, one `write` per batch of replies. What this
//! peer measures against uringws is therefore tokio-uring's I/O model, which
//! DESIGN.md decided against (no multishot receive, no buffer rings, so an
//! idle connection holds its read buffer); keeping it among the peers keeps
//! that decision checked by measurement.
//!
//! One tokio-uring runtime (its own ring) per thread, each with its own
//! `SO_REUSEPORT` listener on the same address, as uringws's workers.

use bytes::{Buf, BufMut, BytesMut};
use clap::Parser;
use mimalloc::MiMalloc;
use socket2::{Domain, Protocol, Socket, Type};
use std::{io, net::SocketAddr, process::ExitCode, thread, time::Duration};
use tokio_uring::{
    buf::BoundedBuf,
    net::{TcpListener, TcpStream},
};
use uringws_peers::{is_echo_path, Args, MAX_FRAME, MAX_MESSAGE};
use uringws_protocol::{
    encoder::Frame,
    handshake::{error_response, error_response_for, Request, DEFAULT_MAX_HEAD},
    session::CloseState,
    DecoderConfig, Message, OpCode, Role, Session,
};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Free space offered to each read. Reads land in the connection's own
/// buffer (tokio-uring 0.5 has no provided-buffer rings), so a larger chunk
/// means fewer reads per large message; an idle connection only has the
/// pages its handshake touched resident.
const READ_CHUNK: usize = 16 << 10;
/// Listen backlog, as uringws's default, so a connect storm is not refused
/// by one server and queued by another.
const BACKLOG: i32 = 4096;

fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // Every thread binds the same address; the kernel spreads connections.
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Reads more bytes onto the end of `buf`; `Ok(0)` at end of stream.
async fn read_more(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    let (len, cap) = (buf.len(), buf.capacity());
    // The slice starts at the end of the data, so the kernel appends.
    let (result, slice) = stream.read(std::mem::take(buf).slice(len..cap)).await;
    *buf = slice.into_inner();
    result
}

/// Sends everything in `out` and leaves it empty for the next batch.
async fn flush(stream: &TcpStream, out: &mut BytesMut) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let (result, mut written) = stream.write_all(std::mem::take(out)).await;
    written.clear();
    *out = written;
    result
}

/// Appends a frame to the batch. Copying the payload lets a batch go out in
/// one `write`; a copy is cheap next to the system call it saves.
fn queue(out: &mut BytesMut, frame: &Frame) {
    out.put_slice(frame.header.as_slice());
    out.put_slice(&frame.payload);
}

/// Reads the upgrade request and answers it. `Ok(true)` once the
/// connection is a WebSocket (bytes after the request stay in `buf`).
async fn handshake(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
    loop {
        let answer = match Request::parse(buf, DEFAULT_MAX_HEAD) {
            Ok(None) => None,
            // 404 outside the echo paths, as uringws.
            Ok(Some(request)) if !is_echo_path(request.path()) => {
                Some((error_response(404, "not found"), None))
            }
            Ok(Some(request)) => Some(match request.upgrade() {
                Ok(upgrade) => match upgrade.response(None, None) {
                    Ok(response) => (response, Some(request.head_len())),
                    Err(e) => (error_response_for(&e), None),
                },
                Err(e) => (error_response_for(&e), None),
            }),
            Err(e) => Some((error_response_for(&e), None)),
        };
        match answer {
            None => {
                if read_more(stream, buf).await? == 0 {
                    return Ok(false);
                }
            }
            Some((response, upgraded)) => {
                stream.write_all(response).await.0?;
                return Ok(match upgraded {
                    Some(head_len) => {
                        buf.advance(head_len);
                        true
                    }
                    None => false,
                });
            }
        }
    }
}

/// Echoes messages until the close handshake is done, the client breaks the
/// protocol or the connection fails.
async fn echo(stream: &TcpStream, mut buf: BytesMut) -> io::Result<()> {
    let config = DecoderConfig {
        max_frame_size: MAX_FRAME,
        max_message_size: MAX_MESSAGE,
        allow_rsv1: false,
    };
    let mut session = Session::new(Role::Server, config);
    let mut out = BytesMut::new();
    loop {
        // Everything the last read completed is answered in one write.
        loop {
            let message = match session.decode(&mut buf) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    // The client broke the protocol: say why, then hang up.
                    if let Some(frame) = session.fail(&error) {
                        queue(&mut out, &frame);
                    }
                    flush(stream, &mut out).await?;
                    return Ok(());
                }
            };
            let reply = match message {
                Message::Text(text) => session.encode(OpCode::Text, true, text.into_bytes()),
                Message::Binary(data) => session.encode(OpCode::Binary, true, data),
                Message::Ping(data) => session.encode(OpCode::Pong, true, data),
                Message::Pong(_) => continue,
                // permessage-deflate is never agreed: RSV1 is refused.
                Message::Compressed(_) => continue,
                Message::Close(frame) => match session.reply_to_close(frame.as_ref()) {
                    Some(reply) => Ok(reply),
                    None => continue,
                },
            };
            // Refused only after our own close, when nothing more is sent.
            if let Ok(frame) = reply {
                queue(&mut out, &frame);
            }
        }
        flush(stream, &mut out).await?;
        if session.state() == CloseState::Closed || read_more(stream, &mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn connection(stream: TcpStream) {
    // Echo latency must not wait for Nagle's algorithm, as in uringws.
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("TCP_NODELAY: {e}");
    }
    let mut buf = BytesMut::new();
    // Errors are resets or the client's protocol violations: the
    // connection just ends.
    if let Ok(true) = handshake(&stream, &mut buf).await {
        let _ = echo(&stream, buf).await;
    }
}

fn serve(listener: std::net::TcpListener) {
    tokio_uring::start(async move {
        let listener = TcpListener::from_std(listener);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio_uring::spawn(connection(stream));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: pause instead
                    // of spinning on the same error.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Bound here, before any thread starts, so a bad address fails the
    // process instead of one thread.
    let mut listeners = Vec::new();
    let mut addr = args.listen;
    for _ in 0..args.threads {
        match listener(addr) {
            Ok(listener) => {
                // Port 0 picks a port once; the other threads share it.
                addr = listener.local_addr().unwrap_or(addr);
                listeners.push(listener);
            }
            Err(e) => {
                eprintln!("bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("listening on {addr}");
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|listener| thread::spawn(move || serve(listener)))
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    ExitCode::FAILURE
}
