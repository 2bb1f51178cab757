//! A PROXY protocol header before the request, from a trusted proxy only.

use super::*;
use crate::TrustedProxies;

fn behind_proxy(ob: &mut Outbox) -> Connection {
    ob.config = Arc::new(EngineConfig {
        trusted_proxies: TrustedProxies::parse(&["192.0.2.0/24"]).unwrap(),
        ..EngineConfig::default()
    });
    accepted(ob)
}

const V1: &str = "PROXY TCP4 203.0.113.9 192.0.2.1 51000 443\r\n";

#[test]
fn a_trusted_proxys_header_names_the_client_even_in_pieces() {
    let mut ob = outbox(|_| {});
    let mut conn = behind_proxy(&mut ob);
    assert!(conn.awaits_proxy_header());
    let stream = format!("{V1}{UPGRADE}");
    let (a, rest) = stream.as_bytes().split_at(9);
    let (b, c) = rest.split_at(V1.len());
    assert_eq!(conn.receive_proxy_header(a, &mut ob), ProxyRead::Wait);
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    // The header's end and the request's start in one read.
    assert_eq!(conn.receive_proxy_header(b, &mut ob), ProxyRead::Done);
    assert!(!conn.awaits_proxy_header());
    assert_eq!(conn.peer(), Some("203.0.113.9:51000".parse().unwrap()));
    assert_eq!(conn.via(), Some(peer()));
    assert_eq!(poll_head(&mut conn, &mut ob), None);
    conn.receive(c, &mut ob);
    let Some((Seen::Upgrade { path, .. }, head_len)) = poll_head(&mut conn, &mut ob) else {
        panic!("no upgrade");
    };
    assert_eq!((path.as_str(), head_len), ("/chat", UPGRADE.len()));
}

#[test]
fn without_a_header_a_trusted_proxys_request_is_read_as_it_is() {
    let mut ob = outbox(|_| {});
    let mut conn = behind_proxy(&mut ob);
    assert_eq!(
        conn.receive_proxy_header(UPGRADE.as_bytes(), &mut ob),
        ProxyRead::Done
    );
    assert_eq!((conn.peer(), conn.via()), (Some(peer()), None));
    assert!(matches!(
        poll_head(&mut conn, &mut ob),
        Some((Seen::Upgrade { .. }, _))
    ));
}

#[test]
fn a_local_header_keeps_the_socket_address() {
    let mut ob = outbox(|_| {});
    let mut conn = behind_proxy(&mut ob);
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.receive_proxy_header(&local, &mut ob), ProxyRead::Done);
    assert_eq!((conn.peer(), conn.via()), (Some(peer()), None));
    assert!(matches!(
        poll_head(&mut conn, &mut ob),
        Some((Seen::Http { .. }, _))
    ));
}

#[test]
fn a_header_that_cannot_be_read_is_answered_400() {
    let mut ob = outbox(|_| {});
    let mut conn = behind_proxy(&mut ob);
    let ProxyRead::Refused(why) = conn.receive_proxy_header(b"PROXY TCP9 x y 1 2\r\n", &mut ob)
    else {
        panic!("taken");
    };
    assert!(why.contains("PROXY v1"), "{why}");
    let answer = written(&mut conn, &mut ob);
    assert!(
        answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert!(conn.is_done(&ob));
}

#[test]
fn from_anyone_else_a_proxy_header_is_a_bad_request() {
    let mut ob = outbox(|_| {});
    let mut conn = accepted(&mut ob);
    assert!(!conn.awaits_proxy_header());
    conn.receive(format!("{V1}{UPGRADE}").as_bytes(), &mut ob);
    let Some((Seen::Invalid(error), _)) = poll_head(&mut conn, &mut ob) else {
        panic!("a PROXY line taken from an untrusted peer");
    };
    assert_eq!(error.http_status(), Some(400));
    assert_eq!(conn.peer(), Some(peer()));
}
