//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): a server picks the
//! first offer it can honour and answers with what it will do; a client
//! checks that answer against its offer.

use crate::{handshake::Extension, Error};
use std::fmt::Write;

/// The extension's token.
pub const NAME: &str = "permessage-deflate";

/// The largest LZ77 window: 2^15 bytes.
pub const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window this implementation compresses with: zlib's raw
/// deflate turns a window of 2^8 into 2^9, so a peer that allows us 8 at
/// most cannot be honoured (RFC 7692 lets an offer be declined).
pub const MIN_WINDOW_BITS: u8 = 9;

/// What one connection agreed to, as both ends see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server starts each message's compression afresh.
    pub server_no_context_takeover: bool,
    /// The client starts each message's compression afresh.
    pub client_no_context_takeover: bool,
    /// The server compresses with a window of at most 2^this bytes.
    pub server_max_window_bits: u8,
    /// The client compresses with a window of at most 2^this bytes.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Context takeover both ways, windows of 2^15: what an offer without
    /// parameters agrees to.
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// What a server agrees to at most, and asks of clients.
///
/// ```
/// use uringws_protocol::deflate::ServerDeflate;
/// use uringws_protocol::handshake::parse_extensions;
///
/// // Chromium's offer; a server with one compressor and one decompressor
/// // per core wants no context takeover either way.
/// let offer = parse_extensions("permessage-deflate; client_max_window_bits");
/// let agreed = ServerDeflate::shared().negotiate(offer).unwrap();
/// assert_eq!(
///     agreed.response(),
///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDeflate {
    /// Compress each message on its own (a compressor shared by many
    /// connections needs it).
    pub server_no_context_takeover: bool,
    /// Ask clients to compress each message on their own (a decompressor
    /// shared by many connections needs it; RFC 7692 lets a server ask).
    pub client_no_context_takeover: bool,
    /// The window we compress with, at most (9..=15).
    pub server_max_window_bits: u8,
    /// The window we ask clients to keep to (9..=15); only a client whose
    /// offer has `client_max_window_bits` can be asked.
    pub client_max_window_bits: u8,
}

impl ServerDeflate {
    /// No context takeover either way, full windows: a core's one
    /// compressor and one decompressor serve every connection, and an idle
    /// connection holds nothing for compression.
    pub fn shared() -> ServerDeflate {
        ServerDeflate {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }

    /// Context takeover where the client allows it, with windows of
    /// 2^`window_bits` (9..=15) each way: each connection gets its own
    /// compressor and decompressor.
    pub fn dedicated(window_bits: u8) -> ServerDeflate {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        ServerDeflate {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: bits,
            client_max_window_bits: bits,
        }
    }

    /// The first offer of permessage-deflate among `offers` that this
    /// server can honour, and what it agrees to; `None` declines the
    /// extension (the connection goes on uncompressed). An offer with an
    /// unknown, repeated or malformed parameter is declined (RFC 7692 §5),
    /// and the next one considered.
    pub fn negotiate<'a>(&self, offers: impl IntoIterator<Item = Extension<'a>>) -> Option<Agreed> {
        offers
            .into_iter()
            .filter(|offer| offer.name().eq_ignore_ascii_case(NAME))
            .find_map(|offer| self.accept(&Offer::parse(&offer)?))
    }

    fn accept(&self, offer: &Offer) -> Option<Agreed> {
        let server_bits = offer
            .server_max_window_bits
            .map_or(self.server_max_window_bits, |bits| {
                bits.min(self.server_max_window_bits)
            });
        if server_bits < MIN_WINDOW_BITS {
            return None;
        }
        // A client that did not say it understands the parameter may use
        // any window; one that did is asked to keep to ours.
        let client_bits = match offer.client_max_window_bits {
            None => MAX_WINDOW_BITS,
            Some(hint) => hint
                .unwrap_or(MAX_WINDOW_BITS)
                .min(self.client_max_window_bits),
        };
        let params = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        let mut response = String::from(NAME);
        if params.server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        // Accepting a limit is echoing it (§7.1.2.1); a smaller window of
        // our own is announced.
        if offer.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS {
            let _ = write!(response, "; server_max_window_bits={server_bits}");
        }
        // The client keeps to its own hint anyway; asking is for less.
        let hint = offer
            .client_max_window_bits
            .map(|h| h.unwrap_or(MAX_WINDOW_BITS));
        if hint.is_some_and(|hint| client_bits < hint) {
            let _ = write!(response, "; client_max_window_bits={client_bits}");
        }
        Some(Agreed { params, response })
    }
}

/// An offer accepted: the parameters, and the answer that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub params: DeflateParams,
    response: String,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` element of the 101 response.
    pub fn response(&self) -> &str {
        &self.response
    }
}

/// The parameters of one offer (or answer), each present at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Present, and with a value or not.
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// `None` for a parameter this extension does not define, one given
    /// twice, or a value that is not allowed.
    fn parse(extension: &Extension<'_>) -> Option<Offer> {
        let mut offer = Offer::default();
        let mut seen = [false; 4];
        for (name, value) in extension.params() {
            let index = PARAMS.iter().position(|p| p.eq_ignore_ascii_case(name))?;
            if std::mem::replace(&mut seen[index], true) {
                return None;
            }
            match (index, value) {
                (0, None) => offer.server_no_context_takeover = true,
                (1, None) => offer.client_no_context_takeover = true,
                (2, Some(value)) => offer.server_max_window_bits = Some(window_bits(value)?),
                (3, None) => offer.client_max_window_bits = Some(None),
                (3, Some(value)) => offer.client_max_window_bits = Some(Some(window_bits(value)?)),
                _ => return None,
            }
        }
        Some(offer)
    }
}

const PARAMS: [&str; 4] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
];

/// A window size, 8 to 15, written as RFC 7692 §7.1.2 writes it: decimal
/// digits, no sign, no leading zero.
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=MAX_WINDOW_BITS).contains(&bits).then_some(bits)
}

/// What a client offers, and checks the answer against.
///
/// ```
/// use uringws_protocol::deflate::ClientDeflate;
/// use uringws_protocol::handshake::parse_extensions;
///
/// let client = ClientDeflate::default();
/// assert_eq!(client.offer(), "permessage-deflate; client_max_window_bits");
/// let answer = parse_extensions("permessage-deflate; server_no_context_takeover").next().unwrap();
/// let params = client.accept(&answer).unwrap();
/// assert!(params.server_no_context_takeover);
/// assert_eq!(params.client_max_window_bits, 15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDeflate {
    /// Ask the server to compress each message on its own.
    pub server_no_context_takeover: bool,
    /// Compress each message on our own, and say so.
    pub client_no_context_takeover: bool,
    /// Ask the server for a window of at most 2^this (9..=15; 15 asks
    /// nothing).
    pub server_max_window_bits: u8,
    /// The window we compress with at most, offered as a hint (15: none);
    /// either way the server may ask for a smaller one.
    pub client_max_window_bits: u8,
}

impl Default for ClientDeflate {
    /// What browsers offer: `client_max_window_bits` with no value.
    fn default() -> Self {
        ClientDeflate {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl ClientDeflate {
    /// The `Sec-WebSocket-Extensions` value to send.
    pub fn offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            let _ = write!(
                offer,
                "; server_max_window_bits={}",
                self.server_max_window_bits.max(MIN_WINDOW_BITS)
            );
        }
        match self.client_max_window_bits {
            MAX_WINDOW_BITS => offer.push_str("; client_max_window_bits"),
            bits => {
                let _ = write!(
                    offer,
                    "; client_max_window_bits={}",
                    bits.max(MIN_WINDOW_BITS)
                );
            }
        }
        offer
    }

    /// The parameters the server's answer (an element named
    /// permessage-deflate) agrees to, or why it breaks RFC 7692 §7 against
    /// [`offer`](Self::offer): the client then fails the connection.
    pub fn accept(&self, answer: &Extension<'_>) -> Result<DeflateParams, Error> {
        let bad = Error::DeflateAnswer;
        let answer =
            Offer::parse(answer).ok_or(bad("an unknown, repeated or malformed parameter"))?;
        let asked_server_bits = self.server_max_window_bits.max(MIN_WINDOW_BITS);
        if self.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err(bad("server_no_context_takeover was asked for"));
        }
        let server_bits = match answer.server_max_window_bits {
            Some(bits) if bits > asked_server_bits => {
                return Err(bad("server_max_window_bits above the one offered"))
            }
            Some(bits) => bits,
            None if asked_server_bits < MAX_WINDOW_BITS => {
                return Err(bad("server_max_window_bits was asked for"))
            }
            None => MAX_WINDOW_BITS,
        };
        let offered_client_bits = self.client_max_window_bits.max(MIN_WINDOW_BITS);
        let client_bits = match answer.client_max_window_bits {
            // We always offer the parameter, so the server may set it.
            Some(Some(bits)) => bits.min(offered_client_bits),
            Some(None) => return Err(bad("client_max_window_bits without a value")),
            None => offered_client_bits,
        };
        // zlib cannot compress with 2^8; a server may ask it of us, and
        // the RFC leaves a client that cannot honour it only failing.
        if client_bits < MIN_WINDOW_BITS {
            return Err(bad(
                "client_max_window_bits=8, which zlib cannot compress with",
            ));
        }
        Ok(DeflateParams {
            server_no_context_takeover: answer.server_no_context_takeover,
            client_no_context_takeover: answer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        })
    }
}
