//! TLS as a connection's byte layer: rustls's unbuffered server
//! connection for the handshake, then our own record layer with its keys
//! ([`Records`], a fraction of rustls's memory), fed the ring's receive
//! buffers (records are decrypted where they arrived) and writing records
//! into the connection's sends. It keeps no buffer while the connection is
//! idle: the ciphertext of a record that came in part waits in `pending`
//! until the rest comes, and TLS's own records (handshake, alerts,
//! close_notify) wait in `out` until the next send takes them.

use super::records::{self, Read, Records};
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
    // So that [`Records`] can take the keys over after the handshake.
    config.enable_secret_extraction = true;
    config.cert_resolver = Arc::new(NoteServerName(config.cert_resolver.clone()));
    Arc::new(config)
}

/// Plaintext put into one record at most (TLS's limit).
pub(crate) const MAX_RECORD: usize = 16 << 10;

pub(crate) struct Tls {
    stage: Stage,
    /// Received ciphertext not yet processed: the start of a record.
    pending: Vec<u8>,
    /// TLS's own records, to go out before any application data.
    out: Vec<u8>,
    /// Our close_notify is queued: nothing more is written.
    closing: bool,
    /// A record could not be read: nothing more is read.
    failed: bool,
    /// The peer's close_notify came: nothing more is read.
    peer_closed: bool,
    /// The config lets the keys be handed to [`Records`].
    extract: bool,
    /// The SNI name the client asked for.
    server_name: Option<Box<str>>,
    /// Once the handshake is over: whether it resumed a session.
    resumed: Option<bool>,
    /// That was reported ([`handshake_done`](Self::handshake_done)).
    reported: bool,
}

enum Stage {
    /// rustls runs the handshake, and what follows if its suite is one
    /// [`Records`] does not handle.
    Rustls(Box<UnbufferedServerConnection>),
    /// After the handshake: our record layer with rustls's keys.
    Records(Records),
    /// The keys could not be taken over; the connection has failed.
    Gone,
}

impl Tls {
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<Tls, rustls::Error> {
        Ok(Tls {
            extract: config.enable_secret_extraction,
            stage: Stage::Rustls(Box::new(UnbufferedServerConnection::new(config)?)),
            pending: Vec::new(),
            out: Vec::new(),
            closing: false,
            failed: false,
            peer_closed: false,
            server_name: None,
            resumed: None,
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
        if self.failed || self.closing || self.peer_closed {
            return Ok(());
        }
        let result = if self.pending.is_empty() {
            // The usual case: whole records, decrypted in the ring's buffer.
            self.read(data, plain)
                .map(|used| self.pending.extend_from_slice(&data[used..]))
        } else {
            self.pending.extend_from_slice(data);
            let mut pending = std::mem::take(&mut self.pending);
            self.read(&mut pending, plain).map(|used| {
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

    /// Reads the whole records in `buf`: returns how many bytes were used
    /// (the rest is the start of a record). Once rustls is done with the
    /// handshake and has nothing to send, [`Records`] takes over.
    fn read(&mut self, buf: &mut [u8], plain: &mut BytesMut) -> Result<usize, rustls::Error> {
        let conn = match &mut self.stage {
            Stage::Rustls(conn) => conn,
            Stage::Records(records) => {
                return match records.open(buf, plain, &mut self.out)? {
                    Read::Used(used) => Ok(used),
                    Read::PeerClosed => {
                        self.peer_closed = true;
                        Ok(buf.len())
                    }
                };
            }
            Stage::Gone => return Ok(buf.len()),
        };
        if !conn.is_handshaking() {
            // rustls keeps the connection: a suite or config of its own.
            return Ok(process(conn, &mut self.out, buf, plain)?.0);
        }
        // rustls is shown one more record at a time, so that it reads
        // nothing past the handshake's last: a KeyUpdate there, read by
        // rustls, would leave its answer in rustls's keeping after we took
        // the keys. (Bytes that are not a whole record go in one piece.)
        let (mut used, mut shown) = (0, 0);
        let writable = loop {
            let end = whole_record(&buf[shown..]).map_or(buf.len(), |len| shown + len);
            let (n, writable) = process(conn, &mut self.out, &mut buf[used..end], plain)?;
            used += n;
            shown = end;
            if !conn.is_handshaking() {
                break writable;
            }
            if end == buf.len() {
                return Ok(used);
            }
        };
        let kind = conn.handshake_kind();
        self.resumed = Some(kind == Some(rustls::HandshakeKind::Resumed));
        let ours = conn.negotiated_cipher_suite().is_some_and(records::handles);
        if writable && self.extract && ours {
            let Stage::Rustls(conn) = std::mem::replace(&mut self.stage, Stage::Gone) else {
                unreachable!("the stage was rustls's a moment ago");
            };
            self.stage = Stage::Records(Records::new(*conn)?);
        }
        Ok(used + self.read(&mut buf[used..], plain)?)
    }

    /// Queues the alert rustls has for the error it returned ([`Records`]
    /// has queued its own). The alert waits in rustls's own queue, which a
    /// call hands out before it reads any record; a call past that would
    /// read the bad input again (and rustls asserts that it sends one
    /// fatal alert only).
    fn fail(&mut self) {
        self.failed = true;
        self.pending = Vec::new();
        let Stage::Rustls(conn) = &mut self.stage else {
            return;
        };
        while conn.wants_write() {
            let status = conn.process_tls_records(&mut []);
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
        let resumed = self.resumed.filter(|_| !self.reported)?;
        self.reported = true;
        Some(resumed)
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
        match &mut self.stage {
            Stage::Records(records) => match records.encrypt(plain, wire) {
                Ok(()) => true,
                // A TLS 1.2 key worn out: the connection can only end.
                Err(_) => {
                    self.close();
                    false
                }
            },
            Stage::Rustls(_) => self.with_write_traffic(
                |traffic, wire| encrypt_into(wire, plain.len(), |buf| traffic.encrypt(plain, buf)),
                wire,
            ),
            Stage::Gone => false,
        }
    }

    /// Whether close_notify can still be queued: not yet, and the
    /// handshake is over, and no record failed.
    pub(crate) fn can_close(&self) -> bool {
        let ready = match &self.stage {
            Stage::Rustls(conn) => !conn.is_handshaking(),
            Stage::Records(_) => true,
            Stage::Gone => false,
        };
        ready && !self.failed && !self.closing
    }

    /// Queues close_notify, once; false if it cannot be sent.
    pub(crate) fn close(&mut self) -> bool {
        if !self.can_close() {
            return false;
        }
        self.closing = true;
        if let Stage::Records(records) = &mut self.stage {
            return records.close(&mut self.out).is_ok();
        }
        let mut wire = BytesMut::new();
        let queued = self.with_write_traffic(
            |traffic, wire| encrypt_into(wire, 0, |buf| traffic.queue_close_notify(buf)),
            &mut wire,
        );
        self.out.extend_from_slice(&wire);
        queued
    }

    /// True once after expanded keys were made for a connection not on the
    /// worker's list of those holding some ([`Outbox::sweep_keys`]).
    pub(crate) fn take_listing(&mut self) -> bool {
        match &mut self.stage {
            Stage::Records(records) => records.take_listing(),
            _ => false,
        }
    }

    /// See [`Records::age`].
    pub(crate) fn age(&mut self, epoch: u32) -> bool {
        match &mut self.stage {
            Stage::Records(records) => records.age(epoch),
            _ => false,
        }
    }

    /// A TLS 1.2 key is worn out: close_notify is queued, nothing more
    /// can be encrypted, and the connection can only end.
    pub(crate) fn worn_out(&self) -> bool {
        matches!(&self.stage, Stage::Records(records) if records.worn_out())
    }

    /// Our record layer, once it took over.
    #[cfg(test)]
    pub(crate) fn records(&mut self) -> Option<&mut Records> {
        match &mut self.stage {
            Stage::Records(records) => Some(records),
            _ => None,
        }
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
        let Stage::Rustls(conn) = &mut self.stage else {
            return false;
        };
        loop {
            // The unprocessed bytes, so the deframer sees the same buffer
            // as when it read them.
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.pending);
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
/// rest is the start of a record), and whether rustls ended ready to write
/// application data with nothing of its own to send.
fn process(
    conn: &mut UnbufferedServerConnection,
    out: &mut Vec<u8>,
    buf: &mut [u8],
    plain: &mut BytesMut,
) -> Result<(usize, bool), rustls::Error> {
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
            ConnectionState::WriteTraffic(_) => return Ok((used + discard, true)),
            // Everything whole is read.
            _ => return Ok((used + discard, false)),
        }
        used += discard;
    }
}

/// The length of the record at the start of `buf`, if it is whole.
fn whole_record(buf: &[u8]) -> Option<usize> {
    let &[_, _, _, hi, lo] = buf.get(..5)? else {
        return None;
    };
    let len = 5 + usize::from(u16::from_be_bytes([hi, lo]));
    (buf.len() >= len).then_some(len)
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
