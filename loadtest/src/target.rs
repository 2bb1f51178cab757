//! Where connections go and where they come from: `ws://` URLs and ranges
//! of local source addresses (each source address has its own ~28k
//! ephemeral ports towards one target, so ranges let a run go past that).

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
    /// Parses `ws://host[:port][/path]` and resolves the host once, up
    /// front: a load test should not measure DNS.
    pub fn parse(url: &str) -> Result<Target, BadInput> {
        let rest = if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("wss://") {
            return Err(bad(format!(
                "{url}: wss:// (TLS) is not supported; use ws://"
            )));
        } else {
            return Err(bad(format!("{url}: expected a ws:// URL")));
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
        let (name, port) = split_port(authority).map_err(|e| bad(format!("{url}: {e}")))?;
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
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (host, port); 80 by default.
fn split_port(authority: &str) -> Result<(&str, u16), String> {
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
        None => 80,
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
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("http://127.0.0.1/", "expected a ws:// URL"),
            ("wss://127.0.0.1/", "TLS"),
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
