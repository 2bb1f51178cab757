//! TLS as a connection's byte layer: rustls's unbuffered server
//! connection, fed the ring's receive buffers (records are decrypted where
//! they arrived) and writing its records into the connection's sends. It
//! keeps no buffer while the connection is idle: the ciphertext of a record
//! that came in part waits in `pending` until the rest comes, and TLS's
//! own records (handshake, alerts, close_notify) wait in `out` until the
//! next send takes them.

use bytes::BytesMut;
use rustls::{
    server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection},
    sign::CertifiedKey,
    unbuffered::{
        ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    },
    ServerConfig,
};
use std::{cell::RefCell, sync::Arc};

thread_local! {
    /// The SNI name of the ClientHello a resolver last saw on this thread.
    static SERVER_NAME: RefCell<Option<Box<str>>> = const { RefCell::new(None) };
}

/// A listener's certificate resolver, noting the name each ClientHello
/// asks for: the unbuffered connection does not keep it where we can read
/// it. A resolver runs inside `process_tls_records`, on the worker's
/// thread, so the connection being processed takes the name right after.
#[derive(Debug)]
struct NoteServerName(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for NoteServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(Box::from);
        SERVER_NAME.with(|noted| *noted.borrow_mut() = name);
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// `config` with its resolver noting SNI names, for a listener.
pub(crate) fn noting_server_names(config: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = config.clone();
    config.cert_resolver = Arc::new(NoteServerName(config.cert_resolver.clone()));
    Arc::new(config)
}

/// Plaintext put into one record at most (TLS's limit).
pub(crate) const MAX_RECORD: usize = 16 << 10;

pub(crate) struct Tls {
    conn: UnbufferedServerConnection,
    /// Received ciphertext not yet processed: the start of a record.
    pending: Vec<u8>,
    /// TLS's own records, to go out before any application data.
    out: Vec<u8>,
    /// Our close_notify is queued: nothing more is written.
    closing: bool,
    /// A record could not be read: nothing more is read.
    failed: bool,
    /// The SNI name the client asked for.
    server_name: Option<Box<str>>,
    /// The handshake's end was reported ([`handshake_done`](Self::handshake_done)).
    reported: bool,
}

impl Tls {
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<Tls, rustls::Error> {
        Ok(Tls {
            conn: UnbufferedServerConnection::new(config)?,
            pending: Vec::new(),
            out: Vec::new(),
            closing: false,
            failed: false,
            server_name: None,
            reported: false,
        })
    }

    /// Reads what arrived: application data is appended to `plain`, TLS's
    /// answers wait for the next send ([`take_output`](Self::take_output)).
    /// An error is the peer's (a bad record, a failed handshake): the alert
    /// for it is queued, and nothing more is read.
    pub(crate) fn receive(
        &mut self,
        data: &mut [u8],
        plain: &mut BytesMut,
    ) -> Result<(), rustls::Error> {
        // Once our close_notify is out, nothing the peer sends matters, and
        // rustls must not be given more: it counts close_notify as its
        // last alert and would assert on a fatal one for bad input after.
        if self.failed || self.closing {
            return Ok(());
        }
        let result = if self.pending.is_empty() {
            // The usual case: whole records, decrypted in the ring's buffer.
            process(&mut self.conn, &mut self.out, data, plain)
                .map(|used| self.pending.extend_from_slice(&data[used..]))
        } else {
            self.pending.extend_from_slice(data);
            let mut pending = std::mem::take(&mut self.pending);
            process(&mut self.conn, &mut self.out, &mut pending, plain).map(|used| {
                pending.drain(..used);
                // A burst's buffer is not kept by an idle connection.
                if !pending.is_empty() {
                    self.pending = pending;
                }
            })
        };
        if let Some(name) = SERVER_NAME.with(|noted| noted.borrow_mut().take()) {
            self.server_name = Some(name);
        }
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Queues the alert rustls has for the error it returned. The alert
    /// waits in rustls's own queue, which a call hands out before it reads
    /// any record; a call past that would read the bad input again (and
    /// rustls asserts that it sends one fatal alert only).
    fn fail(&mut self) {
        self.failed = true;
        self.pending = Vec::new();
        while self.conn.wants_write() {
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.out, |buf| encode.encode(buf));
                }
                _ => return,
            }
        }
    }

    /// Once, when the handshake is over: whether it resumed a session.
    pub(crate) fn handshake_done(&mut self) -> Option<bool> {
        if self.reported || self.conn.is_handshaking() {
            return None;
        }
        self.reported = true;
        let kind = self.conn.handshake_kind();
        Some(kind == Some(rustls::HandshakeKind::Resumed))
    }

    /// The SNI name the client asked for, once its hello was read.
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether application data can be encrypted now.
    pub(crate) fn can_write(&self) -> bool {
        self.can_close()
    }

    /// Whether TLS records of its own wait to be sent.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// TLS's own records, appended to `wire` for the next send.
    pub(crate) fn take_output(&mut self, wire: &mut BytesMut) {
        wire.extend_from_slice(&self.out);
        self.out = Vec::new();
    }

    /// Encrypts `plain` as records appended to `wire`. False while the
    /// handshake does not allow it yet, or once the connection is closing.
    pub(crate) fn encrypt(&mut self, plain: &[u8], wire: &mut BytesMut) -> bool {
        if !self.can_write() {
            return false;
        }
        self.with_write_traffic(
            |traffic, wire| encrypt_into(wire, plain.len(), |buf| traffic.encrypt(plain, buf)),
            wire,
        )
    }

    /// Whether close_notify can still be queued: not yet, and the
    /// handshake is over, and no record failed.
    pub(crate) fn can_close(&self) -> bool {
        !self.conn.is_handshaking() && !self.failed && !self.closing
    }

    /// Queues close_notify, once; false if it cannot be sent.
    pub(crate) fn close(&mut self) -> bool {
        if !self.can_close() {
            return false;
        }
        let mut wire = BytesMut::new();
        let queued = self.with_write_traffic(
            |traffic, wire| encrypt_into(wire, 0, |buf| traffic.queue_close_notify(buf)),
            &mut wire,
        );
        self.out.extend_from_slice(&wire);
        self.closing = true;
        queued
    }

    /// Runs `write` in rustls's write state, handling on the way what the
    /// connection has to send of its own (a session ticket, a key update).
    fn with_write_traffic(
        &mut self,
        write: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut BytesMut,
        ) -> bool,
        wire: &mut BytesMut,
    ) -> bool {
        loop {
            // The unprocessed bytes, so the deframer sees the same buffer
            // as when it read them.
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.pending);
            debug_assert_eq!(discard, 0, "records left unread");
            match state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => return write(&mut traffic, wire),
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.out, |buf| encode.encode(buf));
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                // The peer's close_notify, seen once: we may still write.
                Ok(ConnectionState::PeerClosed) => {}
                _ => return false,
            }
        }
    }
}

/// Processes the records in `buf`: returns how many bytes were used (the
/// rest is the start of a record).
fn process(
    conn: &mut UnbufferedServerConnection,
    out: &mut Vec<u8>,
    buf: &mut [u8],
    plain: &mut BytesMut,
) -> Result<usize, rustls::Error> {
    let mut used = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut buf[used..]);
        match state? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    discard += record.discard;
                    plain.extend_from_slice(record.payload);
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(out, |buf| encode.encode(buf));
            }
            // `out` goes with the connection's next send.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::PeerClosed => {}
            // Early data is not enabled; should any come, it is read the
            // same way.
            ConnectionState::ReadEarlyData(mut early) => {
                while let Some(record) = early.next_record() {
                    let record = record?;
                    discard += record.discard;
                    plain.extend_from_slice(record.payload);
                }
            }
            // Everything whole is read.
            _ => return Ok(used + discard),
        }
        used += discard;
    }
}

/// Appends what `encode` writes to `out`, growing it to the size asked.
fn encode_into(out: &mut Vec<u8>, mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>) {
    let start = out.len();
    let mut need = 1024;
    loop {
        out.resize(start + need, 0);
        match encode(&mut out[start..]) {
            Ok(n) => return out.truncate(start + n),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                need = required_size;
            }
            Err(EncodeError::AlreadyEncoded) => return out.truncate(start),
        }
    }
}

/// Appends what `encrypt` writes for `len` bytes of plaintext to `wire`.
fn encrypt_into(
    wire: &mut BytesMut,
    len: usize,
    mut encrypt: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> bool {
    let start = wire.len();
    // A record's header, tag and content type, per record.
    let mut need = len + (len / MAX_RECORD + 1) * 64;
    loop {
        wire.resize(start + need, 0);
        match encrypt(&mut wire[start..]) {
            Ok(n) => {
                wire.truncate(start + n);
                return true;
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                need = required_size;
            }
            Err(_) => {
                wire.truncate(start);
                return false;
            }
        }
    }
}
