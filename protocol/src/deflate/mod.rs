//! permessage-deflate (RFC 7692): its negotiation, for both roles
//! ([`ServerDeflate::negotiate`], [`ClientDeflate::accept`]), one
//! message's payload compressed and inflated ([`Compressor`],
//! [`Decompressor`], inflating in bounded steps against the message size
//! limit), and a received message inflated ([`Compressed::inflate`]).
//! The decoder yields compressed messages as they came
//! ([`Message::Compressed`]); the encoder marks a compressed payload
//! ([`compressed_server_frame`](crate::encoder::compressed_server_frame)).
//!
//! Memory decides the design: a compressor with zlib's defaults holds
//! about 256 KiB, so by default a server agrees to no context takeover in
//! either direction ([`ServerDeflate::shared`]), and one compressor and one
//! decompressor per core serve every connection;
//! [`ServerDeflate::dedicated`] keeps context per connection, with a
//! smaller window.

mod codec;
mod negotiation;
mod zlib;

pub use codec::{Compressor, Decompressor};
pub use negotiation::{
    Agreed, ClientDeflate, DeflateParams, ServerDeflate, MAX_WINDOW_BITS, MIN_WINDOW_BITS, NAME,
};

use crate::{decoder::Compressed, utf8::Utf8Bytes, Error, Message};
use bytes::Bytes;

impl Compressed {
    /// The message inflated, past `limit` bytes refused (1009) before more
    /// is spent on it, bad data refused (1007), and text validated (1007).
    /// `decompressor` is left ready for the next message, even after an
    /// error, so one can serve many connections.
    pub fn inflate(&self, decompressor: &mut Decompressor, limit: usize) -> Result<Message, Error> {
        let mut out = Vec::new();
        if let Err(error) = decompressor.decompress(&self.data, true, limit, &mut out) {
            decompressor.reset();
            return Err(error);
        }
        // Inflation grows the buffer in steps; a message the handler keeps
        // should not keep the room too.
        if out.capacity() - out.len() > out.len() / 4 {
            out.shrink_to_fit();
        }
        let data = Bytes::from(out);
        Ok(match self.text {
            true => Message::Text(Utf8Bytes::try_from(data)?),
            false => Message::Binary(data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{handshake::parse_extensions, Error};

    fn negotiate(server: ServerDeflate, header: &str) -> Option<Agreed> {
        server.negotiate(parse_extensions(header))
    }

    fn response(server: ServerDeflate, header: &str) -> Option<String> {
        negotiate(server, header).map(|agreed| agreed.response().to_owned())
    }

    const SHARED_ANSWER: &str =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn what_browsers_and_libraries_offer() {
        let shared = ServerDeflate::shared();
        // Chromium, Python websockets; Firefox; Safari.
        for offer in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits=15",
        ] {
            assert_eq!(
                response(shared, offer).as_deref(),
                Some(SHARED_ANSWER),
                "{offer}"
            );
        }
        let agreed = negotiate(
            ServerDeflate::dedicated(9),
            "permessage-deflate; client_max_window_bits",
        )
        .unwrap();
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"
        );
        assert_eq!(
            agreed.params,
            DeflateParams {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 9,
                client_max_window_bits: 9,
            }
        );
        // A client that cannot be asked for a smaller window may use 2^15.
        let agreed = negotiate(ServerDeflate::dedicated(9), "permessage-deflate").unwrap();
        assert_eq!(agreed.params.client_max_window_bits, 15);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_max_window_bits=9"
        );
    }

    #[test]
    fn the_first_acceptable_offer_is_taken() {
        let shared = ServerDeflate::shared();
        // 2^8 cannot be honoured by zlib; the next offer can.
        assert_eq!(
            response(
                shared,
                "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; server_max_window_bits=10"
            )
            .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10"
            )
        );
        assert_eq!(
            response(shared, "permessage-deflate; server_max_window_bits=8"),
            None
        );
        assert_eq!(response(shared, "x-foo, x-bar"), None);
        assert_eq!(response(shared, ""), None);
        // Names and parameters are tokens, compared as HTTP compares them.
        assert_eq!(
            response(shared, "PerMessage-Deflate; Client_Max_Window_Bits").as_deref(),
            Some(SHARED_ANSWER)
        );
    }

    #[test]
    fn offers_rfc_7692_section_5_declines() {
        let shared = ServerDeflate::shared();
        for offer in [
            "permessage-deflate; x-unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=9.0",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; client_max_window_bits=300",
            "permessage-deflate; client_max_window_bits=abc",
        ] {
            assert_eq!(response(shared, offer), None, "{offer}");
            // Declined alone: a good offer after it is still taken.
            let both = format!("{offer}, permessage-deflate");
            assert_eq!(
                response(shared, &both).as_deref(),
                Some(SHARED_ANSWER),
                "{both}"
            );
        }
        // A quoted value is the same value (RFC 6455 §9.1).
        assert!(response(shared, "permessage-deflate; server_max_window_bits=\"10\"").is_some());
    }

    #[test]
    fn a_servers_limits_meet_the_clients() {
        // The client's limit on our window is echoed, ours if smaller.
        let agreed = negotiate(
            ServerDeflate::dedicated(12),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
        )
        .unwrap();
        assert_eq!(agreed.params.server_max_window_bits, 10);
        assert_eq!(agreed.params.client_max_window_bits, 11);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_max_window_bits=10"
        );
        // The client's no-context-takeover requests are honoured.
        let agreed = negotiate(
            ServerDeflate::dedicated(15),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        )
        .unwrap();
        assert!(agreed.params.server_no_context_takeover);
        assert!(agreed.params.client_no_context_takeover);
        assert_eq!(agreed.response(), SHARED_ANSWER);
        // A client hinting 2^8 keeps to it; a decompressor of 2^9 reads it.
        let agreed = negotiate(
            ServerDeflate::dedicated(15),
            "permessage-deflate; client_max_window_bits=8",
        )
        .unwrap();
        assert_eq!(agreed.params.client_max_window_bits, 8);
        assert_eq!(agreed.response(), "permessage-deflate");
    }

    #[test]
    fn a_client_checks_the_answer_against_its_offer() {
        let client = ClientDeflate::default();
        let accept = |client: ClientDeflate, answer: &str| {
            client.accept(&parse_extensions(answer).next().expect("an element"))
        };
        assert_eq!(
            accept(client, "permessage-deflate"),
            Ok(DeflateParams::default())
        );
        let params = accept(client, "permessage-deflate; client_max_window_bits=10").unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        for answer in [
            "permessage-deflate; x-unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
        ] {
            assert!(
                matches!(accept(client, answer), Err(Error::DeflateAnswer(_))),
                "{answer}"
            );
        }
        let asking = ClientDeflate {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            ..ClientDeflate::default()
        };
        assert_eq!(
            asking.offer(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits"
        );
        for answer in [
            // What was asked for must be agreed to.
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        ] {
            assert!(accept(asking, answer).is_err(), "{answer}");
        }
        let params = accept(
            asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 9);
    }

    /// Every client offer against every server policy: the server agrees,
    /// the client accepts its answer, and both see the same parameters.
    #[test]
    fn both_ends_agree_on_what_was_agreed() {
        let bits = [9, 10, 12, 15];
        let flags = [false, true];
        let mut servers = Vec::new();
        for &server_no_context_takeover in &flags {
            for &client_no_context_takeover in &flags {
                for &server_max_window_bits in &bits {
                    for &client_max_window_bits in &bits {
                        servers.push(ServerDeflate {
                            server_no_context_takeover,
                            client_no_context_takeover,
                            server_max_window_bits,
                            client_max_window_bits,
                        });
                    }
                }
            }
        }
        let clients: Vec<ClientDeflate> = servers
            .iter()
            .map(|s| ClientDeflate {
                server_no_context_takeover: s.server_no_context_takeover,
                client_no_context_takeover: s.client_no_context_takeover,
                server_max_window_bits: s.server_max_window_bits,
                client_max_window_bits: s.client_max_window_bits,
            })
            .collect();
        for server in &servers {
            for client in &clients {
                let offer = client.offer();
                let agreed = negotiate(*server, &offer)
                    .unwrap_or_else(|| panic!("{server:?} declined {offer}"));
                let answer = parse_extensions(agreed.response()).next().unwrap();
                let seen = client
                    .accept(&answer)
                    .unwrap_or_else(|e| panic!("{offer} answered {}: {e}", agreed.response()));
                assert_eq!(
                    seen,
                    agreed.params,
                    "{offer} answered {}",
                    agreed.response()
                );
                assert!(agreed.params.server_max_window_bits <= server.server_max_window_bits);
                assert!(agreed.params.server_max_window_bits <= client.server_max_window_bits);
            }
        }
    }
}
