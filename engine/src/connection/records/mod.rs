//! TLS records after the handshake, sealed and opened here with the keys
//! rustls hands over ([`KernelConnection`]). rustls's connection holds
//! about 4 KB for as long as a connection lives; this holds the keys, the
//! sequence numbers, and (TLS 1.3) what computes the keys of a key update.
//! The expanded AEAD keys (544 bytes each direction) are made when a
//! record comes or goes and dropped once the connection has been quiet
//! for a sweep ([`Records::age`]), so an idle connection keeps raw key
//! bytes only.
//!
//! Both versions and the three AEADs rustls's default suites use:
//! AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 (RFC 8446 §5, RFC 5288,
//! RFC 7905). What a client may send after the handshake is read as
//! rustls reads it: application data, alerts (close_notify ends the
//! stream; TLS 1.2 warnings and TLS 1.3's user_canceled are ignored, a
//! few in a row), a TLS 1.3 KeyUpdate (answered when it asks), and a TLS
//! 1.2 renegotiation attempt (refused with a no_renegotiation warning).
//! Anything else gets the fatal alert rustls would send (`messages`).

mod messages;

use bytes::BytesMut;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::{
    kernel::KernelConnection,
    server::{ServerConnectionData, UnbufferedServerConnection},
    AlertDescription, CipherSuite, ConnectionTrafficSecrets, ContentType, Error,
    SupportedCipherSuite,
};
use zeroize::Zeroize;

/// Plaintext in one record at most (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// Ciphertext in one record at most (RFC 8446 §5.2: plaintext + 256).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
const HEADER: usize = 5;
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's per-record nonce on the wire (RFC 5288 §3).
const EXPLICIT_NONCE: usize = 8;
/// Key updates, or warning alerts, in a row that are borne (rustls's
/// limits): each costs us a key derivation or a record's work and the
/// peer a few bytes.
const MAX_KEY_UPDATES: u8 = 32;
const MAX_WARNINGS: u8 = 4;

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const KEY_UPDATE: u8 = 24;
const CLIENT_HELLO: u8 = 1;
const WARNING: u8 = 1;
const FATAL: u8 = 2;

/// Whether this layer seals and opens records of `suite`, known by its
/// identifier whichever provider negotiated it (records are then sealed
/// with ring); rustls keeps the connection otherwise (a suite of a custom
/// provider). A config's `max_fragment_size` no longer applies once we
/// take over: records carry up to 2^14 bytes.
pub(crate) fn handles(suite: SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// One direction's key, IV and sequence number.
struct Direction {
    algorithm: &'static aead::Algorithm,
    key: [u8; 32],
    iv: [u8; 12],
    seq: u64,
    /// The expanded key, while the connection is busy.
    expanded: Option<Box<LessSafeKey>>,
}

impl Drop for Direction {
    /// As rustls does with its key bytes. (ring's expanded keys are not
    /// wiped; neither are rustls's own.)
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

impl Direction {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> Result<Direction, Error> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(Error::General("unsupported traffic secrets".into())),
        };
        let mut direction = Direction {
            algorithm,
            key: [0; 32],
            iv: [0; 12],
            seq,
            expanded: None,
        };
        let (key, iv) = (key.as_ref(), iv.as_ref());
        if key.len() != algorithm.key_len() || iv.len() != direction.iv.len() {
            return Err(Error::General("traffic secrets of the wrong size".into()));
        }
        direction.key[..key.len()].copy_from_slice(key);
        direction.iv.copy_from_slice(iv);
        Ok(direction)
    }

    /// TLS 1.2 AES-GCM: the nonce's last 8 bytes go on the wire.
    fn explicit_nonce(&self, tls13: bool) -> bool {
        !tls13 && !std::ptr::eq(self.algorithm, &aead::CHACHA20_POLY1305)
    }

    /// The IV with the sequence number folded into its last 8 bytes: the
    /// nonce of every record in TLS 1.3 and TLS 1.2 ChaCha20 (RFC 8446
    /// §5.3), and of what we seal in TLS 1.2 AES-GCM (where it is sent).
    fn nonce(&self) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    /// The expanded key, made if the connection was quiet.
    fn cipher(&mut self) -> &LessSafeKey {
        self.expanded.get_or_insert_with(|| {
            let key = &self.key[..self.algorithm.key_len()];
            // The length was checked against the algorithm in `new`.
            let key = UnboundKey::new(self.algorithm, key).expect("key length checked");
            Box::new(LessSafeKey::new(key))
        })
    }
}

/// What a read of records ended with, besides plaintext.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Everything whole was read; this many bytes (the rest is the start
    /// of a record).
    Used(usize),
    /// The peer's close_notify came: it sends nothing more.
    PeerClosed,
}

pub(crate) struct Records {
    rx: Direction,
    tx: Direction,
    tls13: bool,
    /// TLS 1.3: what derives the keys after a key update.
    keys: Option<Box<KernelConnection<ServerConnectionData>>>,
    /// Records sealed under one key at most, the suite's confidentiality
    /// limit: TLS 1.3 then updates its key; TLS 1.2 cannot.
    limit: u64,
    key_updates: u8,
    warnings: u8,
    /// Expanded keys were used since the last sweep.
    used: bool,
    /// On the worker's list of connections holding expanded keys.
    listed: bool,
    /// The sweep that last looked at this connection.
    swept: u32,
}

impl Records {
    /// Takes over from rustls once its handshake is over and it has
    /// nothing left to send.
    pub(crate) fn new(conn: UnbufferedServerConnection) -> Result<Records, Error> {
        let suite = conn
            .negotiated_cipher_suite()
            .ok_or(Error::HandshakeNotComplete)?;
        let (limit, tls13) = match suite {
            SupportedCipherSuite::Tls12(s) => (s.common.confidentiality_limit, false),
            SupportedCipherSuite::Tls13(s) => (s.common.confidentiality_limit, true),
        };
        let (secrets, keys) = conn.dangerous_into_kernel_connection()?;
        Ok(Records {
            rx: Direction::new(secrets.rx)?,
            tx: Direction::new(secrets.tx)?,
            tls13,
            keys: tls13.then(|| Box::new(keys)),
            limit,
            key_updates: 0,
            warnings: 0,
            used: false,
            listed: false,
            swept: 0,
        })
    }

    /// A peer's view of a connection, from the secrets its rustls
    /// connection gave (`ExtractedSecrets`), to forge records with.
    #[cfg(test)]
    pub(crate) fn from_secrets(secrets: rustls::ExtractedSecrets, tls13: bool) -> Records {
        Records {
            rx: Direction::new(secrets.rx).expect("rx secrets"),
            tx: Direction::new(secrets.tx).expect("tx secrets"),
            tls13,
            keys: None,
            limit: u64::MAX,
            key_updates: 0,
            warnings: 0,
            used: false,
            listed: false,
            swept: 0,
        }
    }

    /// Seals a record of any type, as a peer could.
    #[cfg(test)]
    pub(crate) fn seal_any(&mut self, typ: u8, data: &[u8], wire: &mut BytesMut) {
        self.seal_record(typ, data, wire);
    }

    /// Makes the key wear out after `more` records.
    #[cfg(test)]
    pub(crate) fn wear_out_after(&mut self, more: u64) {
        self.limit = self.tx.seq + more;
    }

    /// Opens the whole records at the start of `buf` where they lie,
    /// appending application data to `plain` and what TLS answers (an
    /// alert, a key update) to `out`. An error is the peer's; the alert
    /// for it is in `out` by then.
    pub(crate) fn open(
        &mut self,
        mut buf: &mut [u8],
        plain: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<Read, Error> {
        let mut used = 0;
        loop {
            let Some(&[typ, _, _, hi, lo]) = buf.get(..HEADER) else {
                return Ok(Read::Used(used));
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len > MAX_CIPHERTEXT {
                return Err(self.fail(Error::PeerSentOversizedRecord, out));
            }
            if buf.len() < HEADER + len {
                return Ok(Read::Used(used));
            }
            let (record, rest) = std::mem::take(&mut buf).split_at_mut(HEADER + len);
            buf = rest;
            used += record.len();
            let (header, body) = record.split_at_mut(HEADER);
            let (typ, data) = match self.unseal(typ, header, body) {
                Ok(opened) => opened,
                Err(e) => return Err(self.fail(e, out)),
            };
            match self.on_record(typ, data, plain, out) {
                Ok(true) => {}
                // What follows close_notify is ignored (RFC 8446 §6.1).
                Ok(false) => return Ok(Read::PeerClosed),
                Err(e) => return Err(self.fail(e, out)),
            }
        }
    }

    /// Opens one record: its content type and plaintext.
    fn unseal<'a>(
        &mut self,
        typ: u8,
        header: &[u8],
        body: &'a mut [u8],
    ) -> Result<(u8, &'a [u8]), Error> {
        let tls13 = self.tls13;
        let explicit = self.rx.explicit_nonce(tls13);
        let overhead = TAG + if explicit { EXPLICIT_NONCE } else { 0 };
        if body.len() < overhead {
            return Err(Error::DecryptError);
        }
        if tls13 && typ != APPLICATION_DATA {
            return Err(unexpected(typ));
        }
        let mut nonce = self.rx.nonce();
        let body = if explicit {
            let (explicit, sealed) = body.split_at_mut(EXPLICIT_NONCE);
            nonce[4..].copy_from_slice(explicit);
            sealed
        } else {
            body
        };
        let tls12 = (!tls13).then(|| (self.rx.seq, body.len() - TAG));
        let (aad, aad_len) = additional_data(header, tls12);
        let seq = self.rx.seq.checked_add(1).ok_or(Error::DecryptError)?;
        self.used = true;
        let opened = self
            .rx
            .cipher()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..aad_len]),
                body,
            )
            .map_err(|_| Error::DecryptError)?;
        self.rx.seq = seq;
        // RFC 8446 §5.4: the inner plaintext (content, type, padding) is
        // 2^14 + 1 bytes at most; TLS 1.2's plaintext 2^14.
        if opened.len() > MAX_PLAINTEXT + usize::from(tls13) {
            return Err(Error::PeerSentOversizedRecord);
        }
        let (typ, data) = if tls13 {
            // The content type is the last byte that is not padding.
            let end = opened.iter().rposition(|&b| b != 0).ok_or(unexpected(0))?;
            (opened[end], &opened[..end])
        } else {
            (typ, &opened[..])
        };
        Ok((typ, data))
    }

    /// Queues close_notify.
    pub(crate) fn close(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.alert(WARNING, AlertDescription::CloseNotify, out)
    }

    /// A TLS 1.2 key sealed the records its suite allows (2^24 with
    /// AES-GCM): nothing but alerts can be sent.
    pub(crate) fn worn_out(&self) -> bool {
        !self.tls13 && self.tx.seq >= self.limit
    }

    /// Seals `data` as application data records appended to `wire`. An
    /// error: the key is worn out ([`worn_out`](Self::worn_out)).
    pub(crate) fn encrypt(&mut self, data: &[u8], wire: &mut BytesMut) -> Result<(), Error> {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.seal(APPLICATION_DATA, chunk, wire)?;
        }
        Ok(())
    }

    /// Seals one record, first updating a TLS 1.3 key at its limit.
    fn seal(&mut self, typ: u8, data: &[u8], wire: &mut BytesMut) -> Result<(), Error> {
        if self.tx.seq >= self.limit {
            if self.tls13 {
                self.update_tx_key(wire)?;
            } else if typ != ALERT {
                // Alerts still go, as rustls lets them: close_notify ends
                // a TLS 1.2 connection whose key is worn out.
                return Err(Error::EncryptError);
            }
        }
        self.seal_record(typ, data, wire);
        Ok(())
    }

    fn seal_record(&mut self, typ: u8, data: &[u8], wire: &mut BytesMut) {
        let tls13 = self.tls13;
        let explicit = self.tx.explicit_nonce(tls13);
        let nonce = self.tx.nonce();
        let inner = data.len() + usize::from(tls13);
        let len = inner + TAG + if explicit { EXPLICIT_NONCE } else { 0 };
        let outer = if tls13 { APPLICATION_DATA } else { typ };
        let [hi, lo] = (len as u16).to_be_bytes();
        let header = [outer, 3, 3, hi, lo];
        wire.reserve(HEADER + len);
        wire.extend_from_slice(&header);
        if explicit {
            wire.extend_from_slice(&nonce[4..]);
        }
        let start = wire.len();
        wire.extend_from_slice(data);
        if tls13 {
            wire.extend_from_slice(&[typ]);
        }
        let (aad, aad_len) =
            additional_data(&header, (!tls13).then_some((self.tx.seq, data.len())));
        self.used = true;
        // Only an input longer than the AEAD allows fails; a record is
        // far below that.
        let tag = self
            .tx
            .cipher()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..aad_len]),
                &mut wire[start..],
            )
            .expect("a record is within the AEAD's input limit");
        wire.extend_from_slice(tag.as_ref());
        self.tx.seq += 1;
    }

    /// True once after keys were expanded while off the worker's list of
    /// connections holding them: the caller puts it on.
    pub(crate) fn take_listing(&mut self) -> bool {
        let expanded = self.rx.expanded.is_some() || self.tx.expanded.is_some();
        let list = expanded && !self.listed;
        self.listed |= list;
        list
    }

    /// A sweep of the worker's list (`epoch` counts them): a connection
    /// that used no key since the last one drops its expanded keys and
    /// leaves the list. False: take this entry off (also for a second
    /// entry of the same connection, left by a slot's earlier tenant).
    pub(crate) fn age(&mut self, epoch: u32) -> bool {
        if self.swept == epoch {
            return false;
        }
        self.swept = epoch;
        if std::mem::take(&mut self.used) {
            return true;
        }
        self.rx.expanded = None;
        self.tx.expanded = None;
        self.listed = false;
        false
    }
}

/// A record's additional data and its length: TLS 1.3's is the record's
/// header; TLS 1.2's the sequence number, type, version and plaintext
/// length (RFC 5246 §6.2.3.3).
fn additional_data(header: &[u8], tls12: Option<(u64, usize)>) -> ([u8; 13], usize) {
    let mut aad = [0; 13];
    match tls12 {
        None => {
            aad[..HEADER].copy_from_slice(header);
            (aad, HEADER)
        }
        Some((seq, len)) => {
            aad[..8].copy_from_slice(&seq.to_be_bytes());
            aad[8..11].copy_from_slice(&header[..3]);
            aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
            (aad, aad.len())
        }
    }
}

fn unexpected(typ: u8) -> Error {
    Error::InappropriateMessage {
        expect_types: vec![ContentType::ApplicationData, ContentType::Alert],
        got_type: ContentType::from(typ),
    }
}
