//! A PROXY protocol header before the request (or the TLS handshake) of a
//! connection from a trusted proxy (`crate::proxy`).

use super::*;
use crate::proxy::{read_header, Header};

/// What the first bytes of a connection from a trusted proxy came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ProxyRead {
    /// The header is not whole yet.
    Wait,
    /// Read, or there was none: what follows went where any received
    /// bytes go (the request buffer, or TLS).
    Done,
    /// Not a PROXY header that can be read: answered 400 (plain) or shut
    /// (TLS), and why, for the log.
    Refused(String),
}

impl Connection {
    /// Whether the next bytes go to
    /// [`receive_proxy_header`](Self::receive_proxy_header).
    pub(crate) fn awaits_proxy_header(&self) -> bool {
        matches!(
            self.state,
            State::Handshake {
                proxy_header: true,
                ..
            }
        )
    }

    /// The first bytes of a connection from a trusted proxy: they may
    /// start with a PROXY header, which is taken off (its source becomes
    /// [`peer`](Self::peer)); the rest goes on as any received bytes would.
    pub(crate) fn receive_proxy_header(&mut self, data: &[u8], ob: &mut Outbox) -> ProxyRead {
        let tls = self.is_tls();
        let State::Handshake { proxy_header, .. } = &mut self.state else {
            return ProxyRead::Done;
        };
        let io = self.output.io(&mut ob.pool);
        // Nothing else is in the buffer before the header is through.
        io.inbuf.extend_from_slice(data);
        let len = match read_header(&io.inbuf) {
            Header::Incomplete => return ProxyRead::Wait,
            Header::Absent => 0,
            Header::Read { len, source } => {
                if let Some(source) = source {
                    io.via = io.peer;
                    io.peer = Some(source);
                }
                len
            }
            Header::Invalid(why) => {
                *proxy_header = false;
                // A TLS client would not read a plain answer.
                let response = (!tls)
                    .then(|| uringws_protocol::http::Response::text(400, why.clone()).encode());
                self.end_handshake(response, ob);
                return ProxyRead::Refused(why);
            }
        };
        *proxy_header = false;
        bytes::Buf::advance(&mut io.inbuf, len);
        if tls {
            // The rest is TLS records, to be decrypted where they lie.
            let mut records = std::mem::take(&mut io.inbuf).to_vec();
            self.receive_records(&mut records, ob);
        }
        ProxyRead::Done
    }
}
