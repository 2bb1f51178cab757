//! permessage-deflate (RFC 7692) from the client's side: what a target
//! offers ([`DeflateOffer`]), what one connection agreed to and the
//! streams it keeps ([`ConnDeflate`]), and the streams a worker shares
//! among connections that agreed to no context takeover
//! ([`SharedDeflate`]).
//!
//! A compressor costs 245–371 KiB (flate2 on zlib-rs), and the generator
//! holds tens of thousands of connections: a connection's own streams are
//! made only when it first sends or receives a compressed message, and
//! only for a direction that keeps context. Without context takeover one
//! stream per worker serves every connection in turn.

use uringws_protocol::{
    decoder::Compressed,
    deflate::{ClientDeflate, Compressor, Decompressor, DeflateParams, NAME},
    handshake::Response,
    Error, Message,
};

/// The offer a target's connections make, and the compression level of
/// what they send.
///
/// ```
/// use uringws_load::deflate::DeflateOffer;
/// use uringws_protocol::deflate::ClientDeflate;
///
/// let offer = DeflateOffer::new(ClientDeflate::default(), 6);
/// assert_eq!(offer.header(), "permessage-deflate; client_max_window_bits");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateOffer {
    pub params: ClientDeflate,
    /// zlib's level, 0..=9.
    pub level: u32,
    /// Made once, not on every connection.
    header: String,
}

impl DeflateOffer {
    pub fn new(params: ClientDeflate, level: u32) -> DeflateOffer {
        DeflateOffer {
            header: params.offer(),
            params,
            level: level.min(9),
        }
    }

    /// The `Sec-WebSocket-Extensions` value of the upgrade request.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// What the server's 101 agreed to: `None` when it declined (no
    /// permessage-deflate in its answer), an error when its answer breaks
    /// RFC 7692 against this offer, which fails the connection.
    pub fn agreed(&self, response: &Response) -> Result<Option<DeflateParams>, Error> {
        let mut answers = response
            .extensions()
            .filter(|e| e.name().eq_ignore_ascii_case(NAME));
        let Some(answer) = answers.next() else {
            return Ok(None);
        };
        // One offer was made, so at most one can be accepted (§5).
        if answers.next().is_some() {
            return Err(Error::DeflateAnswer("accepted more than once"));
        }
        self.params.accept(&answer).map(Some)
    }
}

/// One connection's agreement and the streams of its own it has needed so
/// far. The streams are boxed: inline they are 150 bytes each that every
/// connection that agreed would hold, sending or not.
pub(crate) struct ConnDeflate {
    params: DeflateParams,
    level: u8,
    /// Only when we keep context, made by the first message we send.
    compressor: Option<Box<Compressor>>,
    /// Only when the server keeps context, made by the first compressed
    /// message it sends.
    decompressor: Option<Box<Decompressor>>,
}

impl ConnDeflate {
    pub(crate) fn new(params: DeflateParams, offer: &DeflateOffer) -> ConnDeflate {
        ConnDeflate {
            params,
            level: offer.level as u8,
            compressor: None,
            decompressor: None,
        }
    }
}

/// A worker's streams for connections that take no context from one
/// message to the next, and the buffer each message is compressed into.
#[derive(Default)]
pub(crate) struct SharedDeflate {
    /// By window and level: each connection compresses within the window
    /// it agreed to.
    compressors: Vec<(u8, u8, Compressor)>,
    /// At the largest window, which reads any smaller one.
    decompressor: Option<Decompressor>,
    scratch: Vec<u8>,
}

impl SharedDeflate {
    /// `payload` compressed as `conn` agreed: with its own stream when it
    /// keeps context, else with the worker's for its window.
    pub(crate) fn compress(&mut self, conn: &mut ConnDeflate, payload: &[u8]) -> &[u8] {
        let (bits, level) = (conn.params.client_max_window_bits, conn.level);
        let compressor = if conn.params.client_no_context_takeover {
            let at = match self
                .compressors
                .iter()
                .position(|(b, l, _)| (*b, *l) == (bits, level))
            {
                Some(at) => at,
                None => {
                    let compressor = Compressor::new(bits, true, u32::from(level));
                    self.compressors.push((bits, level, compressor));
                    self.compressors.len() - 1
                }
            };
            &mut self.compressors[at].2
        } else {
            conn.compressor
                .get_or_insert_with(|| Box::new(Compressor::new(bits, false, u32::from(level))))
        };
        self.scratch.clear();
        compressor.compress(payload, &mut self.scratch);
        &self.scratch
    }

    /// A compressed message inflated as `conn` agreed, refused past
    /// `limit` bytes.
    pub(crate) fn inflate(
        &mut self,
        conn: &mut ConnDeflate,
        message: &Compressed,
        limit: usize,
    ) -> Result<Message, Error> {
        let params = conn.params;
        let decompressor = if params.server_no_context_takeover {
            self.decompressor
                .get_or_insert_with(|| Decompressor::new(15, true))
        } else {
            conn.decompressor.get_or_insert_with(|| {
                Box::new(Decompressor::new(params.server_max_window_bits, false))
            })
        };
        message.inflate(decompressor, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uringws_protocol::handshake::{accept_key, ClientHandshake, ClientRequest, Request};

    /// The server's 101 to a request offering `offer`, with `answer` as
    /// its `Sec-WebSocket-Extensions` (none if empty).
    fn response(offer: &DeflateOffer, answer: &str) -> Response {
        let request = ClientRequest {
            extensions: Some(offer.header()),
            ..ClientRequest::new("localhost", "/")
        };
        let (handshake, bytes) = ClientHandshake::new(&request).unwrap();
        let request = Request::parse(&bytes, 8192).unwrap().unwrap();
        let accept = accept_key(request.upgrade().unwrap().key().as_bytes());
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            String::from_utf8_lossy(&accept)
        );
        if !answer.is_empty() {
            head += &format!("Sec-WebSocket-Extensions: {answer}\r\n");
        }
        head += "\r\n";
        handshake.parse_response(head.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn an_answer_is_agreed_declined_or_refused() {
        let offer = DeflateOffer::new(
            ClientDeflate {
                server_max_window_bits: 10,
                ..ClientDeflate::default()
            },
            6,
        );
        let agreed = |answer: &str| offer.agreed(&response(&offer, answer));
        assert_eq!(agreed(""), Ok(None), "declined");
        let params = agreed("permessage-deflate; server_max_window_bits=10")
            .unwrap()
            .unwrap();
        assert_eq!(params.server_max_window_bits, 10);
        assert_eq!(params.client_max_window_bits, 15);
        for bad in [
            // The window we asked for was not agreed to.
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; server_max_window_bits=10; x-unknown",
            "permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=9",
        ] {
            let got = agreed(bad);
            assert!(matches!(got, Err(Error::DeflateAnswer(_))), "{bad}: {got:?}");
        }
    }

    #[test]
    fn a_connection_keeps_a_compressor_only_with_context() {
        let offer = DeflateOffer::new(ClientDeflate::default(), 6);
        let message = br#"{"type":"publish","topic":"prices","data":{"bid":101.25,"ask":101.5}}"#;
        let mut shared = SharedDeflate::default();
        for client_no_context_takeover in [false, true] {
            let params = DeflateParams {
                client_no_context_takeover,
                client_max_window_bits: 10,
                ..DeflateParams::default()
            };
            let mut conn = ConnDeflate::new(params, &offer);
            let first = shared.compress(&mut conn, message).len();
            let second = shared.compress(&mut conn, message).len();
            assert_eq!(conn.compressor.is_some(), !client_no_context_takeover);
            // With context the repeat is one back reference to the first.
            if client_no_context_takeover {
                assert_eq!(second, first);
            } else {
                assert!(second < first / 2, "{second} of {first}");
            }
        }
        assert_eq!(shared.compressors.len(), 1, "one stream for window 10");
    }

    #[test]
    fn inflating_follows_the_servers_context_and_the_limit() {
        let offer = DeflateOffer::new(ClientDeflate::default(), 6);
        let message: Vec<u8> = (0..4000u32).map(|i| (i % 97) as u8).collect();
        for server_no_context_takeover in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover,
                server_max_window_bits: 9,
                ..DeflateParams::default()
            };
            let mut conn = ConnDeflate::new(params, &offer);
            let mut shared = SharedDeflate::default();
            let mut server = Compressor::new(9, server_no_context_takeover, 6);
            // Later messages refer back to earlier ones when the server
            // keeps context.
            for _ in 0..3 {
                let mut data = Vec::new();
                server.compress(&message, &mut data);
                let compressed = Compressed {
                    text: false,
                    data: data.into(),
                };
                let inflated = shared.inflate(&mut conn, &compressed, 1 << 20);
                assert_eq!(inflated, Ok(Message::Binary(message.clone().into())));
            }
            assert_eq!(conn.decompressor.is_some(), !server_no_context_takeover);
            assert_eq!(shared.decompressor.is_some(), server_no_context_takeover);
        }
        let mut conn = ConnDeflate::new(DeflateParams::default(), &offer);
        let mut data = Vec::new();
        Compressor::new(15, false, 6).compress(&message, &mut data);
        let compressed = Compressed {
            text: false,
            data: data.into(),
        };
        assert!(matches!(
            SharedDeflate::default().inflate(&mut conn, &compressed, 1000),
            Err(Error::MessageTooLarge { .. })
        ));
    }
}
