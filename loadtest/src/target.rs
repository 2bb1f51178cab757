//! Where connections go and where they come from: `ws://` and `wss://`
//! URLs, and ranges of local source addresses (each source address has its
//! own ~28k ephemeral ports towards one target, so ranges let a run go
//! past that).

use crate::deflate::DeflateOffer;
use crate::tls::{TargetTls, TlsConfig};
use rustls::pki_types::ServerName;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A WebSocket endpoint to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As given, for reports.
    pub url: String,
    /// The `Host` header value (`host` or `host:port`).
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
    pub addr: SocketAddr,
    /// `wss://` targets: the server name and what to trust.
    pub tls: Option<TargetTls>,
    /// permessage-deflate, offered by every connection to it
    /// ([`offer_deflate`](Self::offer_deflate)); none by default.
    pub deflate: Option<DeflateOffer>,
}

/// Why a target or source range was refused, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn bad(message: impl Into<String>) -> BadInput {
    BadInput(message.into())
}

impl Target {
    /// Parses `ws://host[:port][/path]` or `wss://host[:port][/path]`
    /// and resolves the host once, up front: a load test should not
    /// measure DNS. A `wss://` target trusts no certificate until
    /// [`secure_with`](Self::secure_with) says what to trust; its server
    /// name is the URL's host.
    pub fn parse(url: &str) -> Result<Target, BadInput> {
        let (rest, secure) = if let Some(rest) = url.strip_prefix("ws://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (rest, true)
        } else {
            return Err(bad(format!("{url}: expected a ws:// or wss:// URL")));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() {
            return Err(bad(format!("{url}: no host")));
        }
        if authority.contains('@') {
            return Err(bad(format!("{url}: user info in the URL is not supported")));
        }
        let default_port = if secure { 443 } else { 80 };
        let (name, port) =
            split_port(authority, default_port).map_err(|e| bad(format!("{url}: {e}")))?;
        let tls = if secure {
            let server_name = server_name(name).map_err(|e| bad(format!("{url}: {e}")))?;
            let config = TlsConfig::trusting_nothing().map_err(bad)?;
            Some(TargetTls {
                server_name,
                config,
            })
        } else {
            None
        };
        let addr = (name, port)
            .to_socket_addrs()
            .map_err(|e| bad(format!("{url}: cannot resolve {name}: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("{url}: {name} has no address")))?;
        Ok(Target {
            url: url.to_string(),
            host: authority.to_string(),
            path,
            addr,
            tls,
            deflate: None,
        })
    }

    /// For a `wss://` target: trust what `config` trusts, and expect a
    /// certificate for `server_name` (also sent as SNI) instead of the
    /// URL's host; each if given. Nothing for a `ws://` target.
    pub fn secure_with(
        &mut self,
        config: Option<&TlsConfig>,
        server_name: Option<&ServerName<'static>>,
    ) {
        if let Some(tls) = &mut self.tls {
            if let Some(config) = config {
                tls.config = config.clone();
            }
            if let Some(name) = server_name {
                tls.server_name = name.clone();
            }
        }
    }

    /// Every connection to this target offers permessage-deflate as
    /// `offer` says, and compresses and inflates where the server agrees.
    pub fn offer_deflate(&mut self, offer: &DeflateOffer) {
        self.deflate = Some(offer.clone());
    }
}

/// A host as TLS names it: an IP address (no SNI is sent for one), or a
/// DNS name. Also for `--sni`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address"))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (host, port); the
/// scheme's port by default.
fn split_port(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or("unclosed [ in host")?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after the host")),
        };
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host, port))
}

/// Local source addresses to spread connections over, e.g.
/// `127.0.0.2-127.0.0.40` or a single address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRange {
    addrs: Vec<IpAddr>,
}

impl SourceRange {
    pub fn parse(spec: &str) -> Result<SourceRange, BadInput> {
        let parse_ip = |s: &str| -> Result<IpAddr, BadInput> {
            s.trim()
                .parse()
                .map_err(|_| bad(format!("--connect-from: {s:?} is not an IP address")))
        };
        let addrs = match spec.split_once('-') {
            None => vec![parse_ip(spec)?],
            Some((first, last)) => match (parse_ip(first)?, parse_ip(last)?) {
                (IpAddr::V4(first), IpAddr::V4(last)) => {
                    let (a, b) = (u32::from(first), u32::from(last));
                    if a > b {
                        return Err(bad(format!("--connect-from: {first} is after {last}")));
                    }
                    if b - a >= 1 << 16 {
                        return Err(bad("--connect-from: more than 65,536 addresses"));
                    }
                    (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect()
                }
                _ => {
                    return Err(bad(
                        "--connect-from: ranges are IPv4 only; give IPv6 addresses singly",
                    ))
                }
            },
        };
        Ok(SourceRange { addrs })
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The source address for the `n`th connection: round robin.
    pub fn pick(&self, n: usize) -> IpAddr {
        self.addrs[n % self.addrs.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9001", "/echo?x=1")
        );
        let t = Target::parse("ws://127.0.0.1").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));
        let t = Target::parse("ws://127.0.0.1:81?room=2").unwrap();
        assert_eq!(t.path, "/?room=2");
        let t = Target::parse("ws://[::1]:9001/").unwrap();
        assert_eq!(t.addr, "[::1]:9001".parse().unwrap());
        let t = Target::parse("ws://localhost:9001/").unwrap();
        assert!(t.addr.ip().is_loopback());
        assert!(t.tls.is_none());
    }

    #[test]
    fn wss_urls() {
        let t = Target::parse("wss://localhost/chat").unwrap();
        assert_eq!(
            (t.addr.port(), t.host.as_str(), t.path.as_str()),
            (443, "localhost", "/chat")
        );
        let tls = t.tls.as_ref().unwrap();
        assert_eq!(tls.server_name, ServerName::try_from("localhost").unwrap());
        assert_eq!(tls.config.trust(), crate::tls::Trust::Nothing);
        let t = Target::parse("wss://127.0.0.1:9443").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (9443, "/"));
        // An IP address is what the certificate must be for, and no SNI.
        assert!(matches!(
            t.tls.unwrap().server_name,
            ServerName::IpAddress(_)
        ));
        let mut t = Target::parse("wss://[::1]:9443/").unwrap();
        assert!(matches!(
            t.tls.as_ref().unwrap().server_name,
            ServerName::IpAddress(_)
        ));
        let insecure = crate::tls::TlsConfig::insecure().unwrap();
        let name = server_name("example.test").unwrap();
        t.secure_with(Some(&insecure), Some(&name));
        let tls = t.tls.unwrap();
        assert_eq!(
            (tls.config.trust(), tls.server_name),
            (crate::tls::Trust::Anything, name)
        );
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("http://127.0.0.1/", "expected a ws:// or wss:// URL"),
            ("wss://127.0.0.1:x/", "bad port"),
            ("wss://u@localhost/", "user info"),
            ("ws:///echo", "no host"),
            ("ws://127.0.0.1:99999/", "bad port"),
            ("ws://127.0.0.1:x/", "bad port"),
            ("ws://u@127.0.0.1/", "user info"),
            ("ws://[::1/", "unclosed"),
            ("ws://no-such-host.invalid/", "cannot resolve"),
        ] {
            let err = Target::parse(url).unwrap_err();
            assert!(err.0.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn source_ranges() {
        let r = SourceRange::parse("127.0.0.2-127.0.0.40").unwrap();
        assert_eq!(r.len(), 39);
        assert_eq!(r.pick(0), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.pick(39), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(r.pick(38), "127.0.0.40".parse::<IpAddr>().unwrap());
        let r = SourceRange::parse("127.0.0.255-127.0.1.1").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(SourceRange::parse("::1").unwrap().len(), 1);
        for (spec, why) in [
            ("127.0.0.9-127.0.0.2", "after"),
            ("127.0.0.1-x", "not an IP"),
            ("10.0.0.0-10.1.0.0", "65,536"),
            ("::1-::2", "IPv4 only"),
        ] {
            let err = SourceRange::parse(spec).unwrap_err();
            assert!(err.0.contains(why), "{spec}: {err}");
        }
    }
}
