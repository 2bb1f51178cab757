//! Records a client could forge with its own keys: what the server makes
//! of alerts and handshake messages after the handshake.

use super::{pair, ALL};
use bytes::BytesMut;
use rustls::{AlertDescription, Error, PeerMisbehaved};

#[test]
fn a_tls12_renegotiation_is_refused_with_a_warning_a_few_times() {
    let (mut client, mut server) = pair(ALL[3]).forger();
    let hello = [1, 0, 0, 2, 3, 3];
    let mut plain = BytesMut::new();
    for n in 1..=5 {
        let mut wire = BytesMut::new();
        client.seal_any(22, &hello, &mut wire);
        let result = server.receive(&mut wire, &mut plain);
        if n <= 4 {
            result.expect("a refused renegotiation is borne");
            let mut out = BytesMut::new();
            server.take_output(&mut out);
            // The warning opens, and a TLS 1.2 warning is not an error.
            assert!(!out.is_empty(), "no_renegotiation sent");
            client
                .open(&mut out, &mut plain, &mut Vec::new())
                .expect("warning");
        } else {
            assert_eq!(
                result,
                Err(PeerMisbehaved::TooManyWarningAlertsReceived.into())
            );
        }
    }
}

#[test]
fn tls13_alerts_and_handshake_messages_after_the_handshake() {
    // user_canceled is borne; data still flows after it.
    let (mut client, mut server) = pair(ALL[0]).forger();
    let mut plain = BytesMut::new();
    let mut wire = BytesMut::new();
    client.seal_any(21, &[1, 90], &mut wire);
    client.seal_any(23, b"still here", &mut wire);
    server
        .receive(&mut wire, &mut plain)
        .expect("user_canceled");
    assert_eq!(&plain[..], b"still here");

    let cases: [(u8, &[u8], Error); 6] = [
        (
            21,
            &[2, 40],
            Error::AlertReceived(AlertDescription::HandshakeFailure),
        ),
        // A KeyUpdate with a message after it in its record.
        (
            22,
            &[24, 0, 0, 1, 0, 24, 0, 0, 1, 0],
            PeerMisbehaved::KeyEpochWithPendingFragment.into(),
        ),
        (
            22,
            &[24, 0, 0, 1, 7],
            Error::InvalidMessage(rustls::InvalidMessage::InvalidKeyUpdate),
        ),
        // A NewSessionTicket is the server's to send.
        (22, &[4, 0, 0, 0], inappropriate(22)),
        // An inner plaintext of padding alone.
        (0, &[], inappropriate(0)),
        (
            21,
            &[1],
            Error::InvalidMessage(rustls::InvalidMessage::MessageTooShort),
        ),
    ];
    for (typ, data, expect) in cases {
        let (mut client, mut server) = pair(ALL[0]).forger();
        let mut wire = BytesMut::new();
        client.seal_any(typ, data, &mut wire);
        assert_eq!(server.receive(&mut wire, &mut plain), Err(expect.clone()));
        let mut out = BytesMut::new();
        server.take_output(&mut out);
        // The alert rustls would send, except in answer to the peer's.
        let alert = match &expect {
            Error::AlertReceived(_) => None,
            Error::InvalidMessage(rustls::InvalidMessage::InvalidKeyUpdate) => {
                Some(AlertDescription::IllegalParameter)
            }
            Error::InvalidMessage(_) => Some(AlertDescription::DecodeError),
            _ => Some(AlertDescription::UnexpectedMessage),
        };
        let got = client.open(&mut out, &mut BytesMut::new(), &mut Vec::new());
        match alert {
            None => assert!(out.is_empty(), "{expect:?}: no answer to an alert"),
            Some(alert) => assert_eq!(got, Err(Error::AlertReceived(alert)), "{expect:?}"),
        }
    }
    // An inner plaintext over 2^14 + 1 bytes, its padding included.
    let (mut client, mut server) = pair(ALL[0]).forger();
    let mut wire = BytesMut::new();
    let mut padded = vec![b'x'; 1 << 14];
    padded.extend_from_slice(&[23, 0]);
    client.seal_any(23, &padded, &mut wire);
    assert_eq!(
        server.receive(&mut wire, &mut plain),
        Err(Error::PeerSentOversizedRecord)
    );
}

fn inappropriate(typ: u8) -> Error {
    Error::InappropriateMessage {
        expect_types: vec![
            rustls::ContentType::ApplicationData,
            rustls::ContentType::Alert,
        ],
        got_type: rustls::ContentType::from(typ),
    }
}
