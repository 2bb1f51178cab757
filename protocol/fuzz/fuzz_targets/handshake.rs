//! Arbitrary bytes as a client's upgrade request and as a server's answer:
//! no panic, every server-side refusal maps to an HTTP status, and parsing
//! never looks past the head limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringws_protocol::handshake::{error_response_for, ClientHandshake, ClientRequest, Request};

const MAX_HEAD: usize = 4096;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data, MAX_HEAD) {
        Ok(Some(request)) => {
            assert!(request.head_len() <= MAX_HEAD.min(data.len()));
            let _ = (request.path(), request.query(), request.origin());
            match request.upgrade() {
                Ok(upgrade) => {
                    let offered: Vec<&str> = upgrade.protocols().collect();
                    for extension in upgrade.extensions() {
                        let _ = extension.params().count();
                    }
                    let chosen = offered.first().copied();
                    assert!(upgrade.response(chosen, None).is_ok());
                }
                Err(e) => {
                    assert!(e.http_status().is_some(), "{e:?} has no status");
                    let _ = error_response_for(&e);
                }
            }
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD),
        Err(e) => assert!(e.http_status().is_some(), "{e:?} has no status"),
    }

    let request = ClientRequest {
        protocols: &["chat", "uringws.v1"],
        extensions: Some("permessage-deflate"),
        ..ClientRequest::new("127.0.0.1:9001", "/echo")
    };
    if let Ok((client, _)) = ClientHandshake::with_key(&request, [7; 16]) {
        if let Ok(Some(response)) = client.parse_response(data) {
            assert!(response.head_len() <= data.len());
        }
    }
});
