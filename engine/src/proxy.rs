//! Clients behind a proxy. A connection from a trusted proxy
//! ([`EngineConfig::trusted_proxies`](crate::EngineConfig::trusted_proxies))
//! may begin with a PROXY protocol header (v2, binary, as HAProxy's
//! `send-proxy-v2` and cloud load balancers send it; or v1, text, as
//! nginx's stream module does), and its requests may carry
//! `X-Forwarded-For`; both say who the client is, so that per-IP limits
//! and logs see the client rather than the proxy. From anyone else neither
//! is believed: a PROXY header is a malformed request (400), and
//! `X-Forwarded-For` is only a header.

use ipnet::IpNet;
use ppp::PartialResult;
use std::net::{IpAddr, SocketAddr};
use uringws_protocol::handshake::Request;

/// Addresses and networks whose word on the client's address is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Each entry an address (`10.0.0.7`, `::1`) or a network
    /// (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an address or a network (CIDR)"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Who the client of `request` is, when it came from `peer` (a trusted
    /// proxy, or the connection's own peer): the rightmost address of
    /// `X-Forwarded-For` that is not a trusted proxy, each hop to its
    /// right having vouched for it. `None` without the header, or when
    /// `peer` is not trusted. An entry that is not an address ends the
    /// walk at the hop that wrote it. The port is 0: the header has none.
    pub fn client(&self, request: &Request<'_>, peer: IpAddr) -> Option<SocketAddr> {
        if !self.trusts(peer) {
            return None;
        }
        let mut hops = request
            .header_values("x-forwarded-for")
            .flat_map(|value| value.split(|&b| b == b','))
            .collect::<Vec<_>>();
        if hops.is_empty() {
            return None;
        }
        let mut client = peer;
        while let Some(hop) = hops.pop() {
            let Some(ip) = std::str::from_utf8(hop)
                .ok()
                .and_then(|h| forwarded_ip(h.trim()))
            else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(SocketAddr::new(client, 0))
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`, `[::1]`.
fn forwarded_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The longest PROXY header taken: v1's are at most 107 bytes; v2's may
/// carry TLVs up to 64 KiB, but what proxies send is a few hundred bytes.
pub(crate) const MAX_HEADER: usize = 4096;

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_SIGNATURE: &[u8] = b"PROXY ";

/// What the first bytes of a connection from a trusted proxy are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// Not a PROXY header: the request (or TLS) starts here.
    Absent,
    /// Could be one; more bytes will tell.
    Incomplete,
    /// A header of `len` bytes; `source` is the client, or `None` for a
    /// proxy's own connection (v2 `LOCAL`, v1 `UNKNOWN`) or an address
    /// family other than IP.
    Read {
        len: usize,
        source: Option<SocketAddr>,
    },
    Invalid(String),
}

pub(crate) fn read_header(buf: &[u8]) -> Header {
    let starts = |signature: &[u8]| {
        let n = buf.len().min(signature.len());
        buf[..n] == signature[..n]
    };
    if buf.is_empty() {
        Header::Incomplete
    } else if starts(V2_SIGNATURE) {
        read_v2(buf)
    } else if starts(V1_SIGNATURE) {
        read_v1(buf)
    } else {
        Header::Absent
    }
}

fn read_v2(buf: &[u8]) -> Header {
    const FIXED: usize = 16;
    if buf.len() < FIXED {
        return Header::Incomplete;
    }
    let len = FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_HEADER {
        return Header::Invalid(format!("PROXY v2 header of {len} bytes"));
    }
    if buf.len() < len {
        return Header::Incomplete;
    }
    match ppp::v2::Header::try_from(&buf[..len]) {
        Ok(header) => {
            let source = match (header.command, header.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Header::Read { len, source }
        }
        Err(error) => Header::Invalid(format!("PROXY v2 header: {error}")),
    }
}

fn read_v1(buf: &[u8]) -> Header {
    let result = ppp::v1::Header::try_from(buf);
    if result.is_incomplete() {
        return if buf.len() >= 107 {
            Header::Invalid("PROXY v1 header without its end".into())
        } else {
            Header::Incomplete
        };
    }
    match result {
        Ok(header) => {
            let source = match header.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Header::Read {
                len: header.header.len(),
                source,
            }
        }
        Err(error) => Header::Invalid(format!("PROXY v1 header: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).unwrap()
    }

    fn client_of(proxies: &TrustedProxies, headers: &str, peer: &str) -> Option<SocketAddr> {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let request = Request::parse(head.as_bytes(), 8192).unwrap().unwrap();
        proxies.client(&request, peer.parse().unwrap())
    }

    fn ip(s: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(s.parse().unwrap(), 0))
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        let p = trusted(&["10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8"]);
        assert!(p.trusts("10.1.2.3".parse().unwrap()));
        assert!(p.trusts("192.168.1.7".parse().unwrap()));
        assert!(!p.trusts("192.168.1.8".parse().unwrap()));
        assert!(p.trusts("::1".parse().unwrap()));
        assert!(p.trusts("fd12::1".parse().unwrap()));
        // As a dual-stack socket shows an IPv4 peer.
        assert!(p.trusts("::ffff:10.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"])
            .unwrap_err()
            .contains("proxy.local"));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let p = trusted(&["10.0.0.0/8"]);
        let xff = |v: &str| format!("X-Forwarded-For: {v}\r\n");
        // A client can write anything on the left; only what trusted hops
        // appended counts.
        assert_eq!(
            client_of(&p, &xff("6.6.6.6, 1.2.3.4"), "10.0.0.1"),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_of(&p, &xff("1.2.3.4, 10.0.0.9"), "10.0.0.1"),
            ip("1.2.3.4")
        );
        // Several fields are one list, in order.
        let two = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n";
        assert_eq!(client_of(&p, two, "10.0.0.1"), ip("1.2.3.4"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            client_of(&p, &xff("10.0.0.3, 10.0.0.9"), "10.0.0.1"),
            ip("10.0.0.3")
        );
        // Ports and brackets.
        assert_eq!(
            client_of(&p, &xff("[2001:db8::1]:443"), "10.0.0.1"),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_of(&p, &xff("1.2.3.4:5678"), "10.0.0.1"),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_of(&p, &xff("2001:db8::2"), "10.0.0.1"),
            ip("2001:db8::2")
        );
        // Garbage stops the walk at the hop that wrote it.
        assert_eq!(
            client_of(&p, &xff("1.2.3.4, unknown"), "10.0.0.1"),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_of(&p, &xff("junk, 10.0.0.9"), "10.0.0.1"),
            ip("10.0.0.9")
        );
        // From an untrusted peer, or without the header: nothing.
        assert_eq!(client_of(&p, &xff("1.2.3.4"), "8.8.8.8"), None);
        assert_eq!(client_of(&p, "", "10.0.0.1"), None);
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn proxy_v2_headers_give_the_source_or_nothing() {
        // TCP over IPv4: 1.2.3.4:5678 to 10.0.0.1:443.
        let mut tcp4 = vec![1, 2, 3, 4, 10, 0, 0, 1];
        tcp4.extend_from_slice(&5678u16.to_be_bytes());
        tcp4.extend_from_slice(&443u16.to_be_bytes());
        let header = v2(1, 0x11, &tcp4);
        let mut stream = header.clone();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let read = Header::Read {
            len: header.len(),
            source: Some("1.2.3.4:5678".parse().unwrap()),
        };
        assert_eq!(read_header(&stream), read);
        // Byte by byte, it is incomplete until whole.
        for n in 0..header.len() {
            assert_eq!(read_header(&header[..n]), Header::Incomplete, "{n}");
        }
        // TCP over IPv6.
        let mut tcp6 = vec![0; 36];
        tcp6[15] = 1;
        tcp6[31] = 2;
        tcp6[32..34].copy_from_slice(&80u16.to_be_bytes());
        let header = v2(1, 0x21, &tcp6);
        assert_eq!(
            read_header(&header),
            Header::Read {
                len: header.len(),
                source: Some("[::1]:80".parse().unwrap())
            }
        );
        // LOCAL: the proxy's own health check.
        let local = v2(0, 0, &[]);
        assert_eq!(
            read_header(&local),
            Header::Read {
                len: 16,
                source: None
            }
        );
        // A bad command, an announced length past the cap.
        assert!(matches!(
            read_header(&v2(7, 0x11, &tcp4)),
            Header::Invalid(_)
        ));
        let mut long = v2(1, 0x11, &tcp4);
        long[14..16].copy_from_slice(&5000u16.to_be_bytes());
        assert!(matches!(read_header(&long), Header::Invalid(_)));
    }

    #[test]
    fn proxy_v1_headers_and_plain_requests() {
        let line = b"PROXY TCP4 1.2.3.4 10.0.0.1 5678 443\r\n";
        let mut stream = line.to_vec();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            read_header(&stream),
            Header::Read {
                len: line.len(),
                source: Some("1.2.3.4:5678".parse().unwrap())
            }
        );
        assert_eq!(read_header(&line[..20]), Header::Incomplete);
        assert_eq!(
            read_header(b"PROXY UNKNOWN\r\n"),
            Header::Read {
                len: 15,
                source: None
            }
        );
        assert!(matches!(
            read_header(b"PROXY TCP9 x\r\n"),
            Header::Invalid(_)
        ));
        assert!(matches!(read_header(&[b'P'; 200]), Header::Absent));
        let endless = [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat();
        assert!(matches!(read_header(&endless), Header::Invalid(_)));
        // Not a header: a request, or a TLS ClientHello.
        assert_eq!(read_header(b"GET / HTTP/1.1\r\n"), Header::Absent);
        assert_eq!(read_header(&[0x16, 3, 1]), Header::Absent);
        assert_eq!(read_header(b"P"), Header::Incomplete);
        assert_eq!(read_header(b""), Header::Incomplete);
    }
}
