//! Properties over generated input: neither parser panics on any bytes, and
//! whatever a client offers goes through the server and back intact.

use proptest::prelude::*;

use super::*;

/// Bytes that look like a head often enough to reach the deeper paths.
fn head_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"HTTP/1.1 101 Switching Protocols\r\n".to_vec()),
        Just(b"Host: a\r\n".to_vec()),
        Just(b"Upgrade: websocket\r\n".to_vec()),
        Just(b"Connection: Upgrade\r\n".to_vec()),
        Just(b"Sec-WebSocket-Version: 13\r\n".to_vec()),
        Just(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n".to_vec()),
        Just(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n".to_vec()),
        Just(b"Sec-WebSocket-Protocol: ".to_vec()),
        Just(b"Sec-WebSocket-Extensions: ".to_vec()),
        Just(b"\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
        "[ -~]{0,24}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// A valid request or response with a few bytes overwritten.
fn mutated_head() -> impl Strategy<Value = Vec<u8>> {
    const REQUEST: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Protocol: chat, x\r\nSec-WebSocket-Extensions: permessage-deflate; a=\"1\"\r\n\r\n";
    const RESPONSE: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; a=\"1\"\r\n\r\n";
    (
        prop_oneof![Just(REQUEST), Just(RESPONSE)],
        proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
    )
        .prop_map(|(head, edits)| {
            let mut head = head.to_vec();
            for (at, byte) in edits {
                let i = at.index(head.len());
                head[i] = byte;
            }
            head
        })
}

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        head_like(),
        mutated_head()
    ]
}

/// Walks everything a parsed request and its upgrade expose.
fn exercise_request(buf: &[u8], max_head: usize) {
    if let Ok(Some(req)) = Request::parse(buf, max_head) {
        assert!(req.head_len() <= buf.len().min(max_head));
        let _ = (
            req.path(),
            req.query(),
            req.origin(),
            req.is_upgrade(),
            req.headers().count(),
        );
        if let Ok(up) = req.upgrade() {
            assert_eq!(up.key().len(), 24);
            let offered: Vec<&str> = up.protocols().collect();
            for ext in up.extensions() {
                let _ = ext.params().count();
            }
            let choice = offered.first().copied();
            if let Ok(resp) = up.response(choice, None) {
                assert!(resp.ends_with(b"\r\n\r\n"));
            }
        }
    }
}

fn subprotocol() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
}

proptest! {
    #[test]
    fn request_parser_never_panics(buf in arbitrary_bytes(), max_head in 0usize..600) {
        exercise_request(&buf, max_head);
        exercise_request(&buf, DEFAULT_MAX_HEAD);
    }

    #[test]
    fn response_parser_never_panics(buf in arbitrary_bytes(), max_head in 0usize..600, protocols in proptest::collection::vec(subprotocol(), 0..3)) {
        let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
        let request = ClientRequest { protocols: &protocols, extensions: Some("permessage-deflate"), ..ClientRequest::new("h", "/") };
        let (client, _) = ClientHandshake::with_key(&request, *b"the sample nonce")?;
        for client in [client.clone(), client.with_max_head(max_head)] {
            if let Ok(Some(resp)) = client.parse_response(&buf) {
                prop_assert!(resp.head_len() <= buf.len());
                for ext in resp.extensions() {
                    let _ = ext.params().count();
                }
            }
        }
    }

    #[test]
    fn extension_parser_never_panics(value in "\\PC{0,64}") {
        for ext in parse_extensions(&value) {
            prop_assert!(!ext.name().is_empty());
            for (name, _) in ext.params() {
                prop_assert!(!name.is_empty());
            }
        }
    }

    #[test]
    fn handshakes_round_trip(
        key in any::<[u8; 16]>(),
        protocols in proptest::collection::vec(subprotocol(), 0..6),
        pick in any::<proptest::sample::Index>(),
        trailing in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
        let request = ClientRequest { protocols: &protocols, ..ClientRequest::new("example.com:80", "/p?q") };
        let (client, request) = ClientHandshake::with_key(&request, key)?;

        let mut wire = request.to_vec();
        wire.extend_from_slice(&trailing);
        let req = Request::parse(&wire, DEFAULT_MAX_HEAD)?.ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(req.head_len(), request.len());
        let up = req.upgrade()?;
        prop_assert_eq!(up.protocols().collect::<Vec<_>>(), protocols.clone());

        let chosen = (!protocols.is_empty()).then(|| protocols[pick.index(protocols.len())]);
        let answer = up.response(chosen, None)?;
        let mut wire = answer.to_vec();
        wire.extend_from_slice(&trailing);
        let resp = client.parse_response(&wire)?.ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(resp.head_len(), answer.len());
        prop_assert_eq!(resp.protocol(), chosen);
    }
}
