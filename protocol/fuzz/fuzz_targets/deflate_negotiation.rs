//! permessage-deflate negotiation fed arbitrary offers and answers.
//!
//! Invariants: no panic; what a server agrees to is within its limits and
//! the offer's, and its answer is one element that a client making that
//! very offer accepts with the same parameters; a client's check of an
//! arbitrary answer either fails or yields windows within RFC 7692's range
//! and no larger than it offered.
#![no_main]

use libfuzzer_sys::{arbitrary, arbitrary::Arbitrary, fuzz_target};
use uringws_protocol::{
    deflate::{ClientDeflate, ServerDeflate, MAX_WINDOW_BITS, MIN_WINDOW_BITS},
    handshake::parse_extensions,
};

#[derive(Arbitrary, Debug)]
struct Input {
    server: (bool, bool, u8, u8),
    client: (bool, bool, u8, u8),
    /// A `Sec-WebSocket-Extensions` value, offered to the server and, as
    /// an answer, to the client.
    header: String,
}

fn bits(b: u8) -> u8 {
    MIN_WINDOW_BITS + b % (MAX_WINDOW_BITS - MIN_WINDOW_BITS + 1)
}

fuzz_target!(|input: Input| {
    let (a, b, c, d) = input.server;
    let server = ServerDeflate {
        server_no_context_takeover: a,
        client_no_context_takeover: b,
        server_max_window_bits: bits(c),
        client_max_window_bits: bits(d),
    };
    let (a, b, c, d) = input.client;
    let client = ClientDeflate {
        server_no_context_takeover: a,
        client_no_context_takeover: b,
        server_max_window_bits: bits(c),
        client_max_window_bits: bits(d),
    };

    // An arbitrary offer: whatever is agreed is within the server's limits
    // and answered in one well-formed element.
    if let Some(agreed) = server.negotiate(parse_extensions(&input.header)) {
        let p = agreed.params;
        assert!(p.server_max_window_bits >= MIN_WINDOW_BITS);
        assert!(p.server_max_window_bits <= server.server_max_window_bits);
        assert!(p.client_max_window_bits <= MAX_WINDOW_BITS);
        assert!(p.server_no_context_takeover || !server.server_no_context_takeover);
        assert!(p.client_no_context_takeover || !server.client_no_context_takeover);
        let mut answer = parse_extensions(agreed.response());
        assert!(answer
            .next()
            .is_some_and(|e| e.name() == "permessage-deflate"));
        assert!(answer.next().is_none());
    }

    // The client's own offer: agreed, and both ends see the same.
    let offer = client.offer();
    let agreed = server
        .negotiate(parse_extensions(&offer))
        .expect("own offer declined");
    let answer = parse_extensions(agreed.response())
        .next()
        .expect("an answer");
    assert_eq!(
        client.accept(&answer).expect("own answer refused"),
        agreed.params
    );

    // An arbitrary answer: refused, or within what was offered.
    for answer in parse_extensions(&input.header) {
        if let Ok(p) = client.accept(&answer) {
            assert!(p.server_max_window_bits <= client.server_max_window_bits.max(MIN_WINDOW_BITS));
            assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&p.client_max_window_bits));
            assert!(p.client_max_window_bits <= client.client_max_window_bits);
            assert!(p.server_no_context_takeover || !client.server_no_context_takeover);
        }
    }
});
