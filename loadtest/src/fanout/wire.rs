//! What goes on the wire: the payload every publish carries (header,
//! check word, filler), the `uringws.v1` binary frame around it, and the
//! server's JSON replies to a subscribe.

use serde::Deserialize;
use std::fmt::Write as _;

/// Bytes of the payload header: publisher `u32`, sequence `u64`, send time
/// `u64` (ns, CLOCK_MONOTONIC), check word `u32`, all big-endian; filler
/// follows.
pub const HEADER: usize = 24;

/// The header of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    /// When it was due to be sent: ns on CLOCK_MONOTONIC.
    pub sent_ns: u64,
}

/// A word every bit of the header changes, so a corrupted header is a
/// failure and not a phantom publisher, reorder or latency.
fn check_word(publisher: u32, seq: u64, sent_ns: u64) -> u32 {
    let mut h = (publisher as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ seq.rotate_left(21)
        ^ sent_ns.rotate_left(43);
    // MurmurHash3's 64-bit finalizer: full avalanche.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32
}

/// The filler after the header: a fixed pattern, so corruption anywhere
/// in the payload is caught by one comparison. JSON-like records whose
/// keys repeat and whose values vary, so that permessage-deflate shrinks
/// it as it would real traffic (a byte counter modulo 251 has no repeat a
/// 2^9 window can reach, and goes out uncompressed).
pub fn filler(size: usize) -> Vec<u8> {
    let len = size.saturating_sub(HEADER);
    let mut out = String::with_capacity(len + 64);
    let mut i = 0usize;
    while out.len() < len {
        let _ = write!(
            out,
            r#"{{"id":{i},"px":{}.{:02},"sym":"S{}"}},"#,
            100 + i * 7 % 900,
            i * 13 % 100,
            i % 17
        );
        i += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

/// Appends the payload for `stamp` (header, then `filler`).
pub fn write_payload(out: &mut Vec<u8>, stamp: Stamp, filler: &[u8]) {
    out.extend_from_slice(&stamp.publisher.to_be_bytes());
    out.extend_from_slice(&stamp.seq.to_be_bytes());
    out.extend_from_slice(&stamp.sent_ns.to_be_bytes());
    out.extend_from_slice(&check_word(stamp.publisher, stamp.seq, stamp.sent_ns).to_be_bytes());
    out.extend_from_slice(filler);
}

/// Reads and checks a payload of `filler.len() + HEADER` bytes.
pub fn read_payload(payload: &[u8], filler: &[u8]) -> Result<Stamp, &'static str> {
    if payload.len() != HEADER + filler.len() {
        return Err("malformed delivery: wrong length");
    }
    let (header, rest) = payload.split_at(HEADER);
    let field = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[8 - range.len()..].copy_from_slice(&header[range]);
        b
    };
    let stamp = Stamp {
        publisher: u64::from_be_bytes(field(0..4)) as u32,
        seq: u64::from_be_bytes(field(4..12)),
        sent_ns: u64::from_be_bytes(field(12..20)),
    };
    let check = u64::from_be_bytes(field(20..24)) as u32;
    if check != check_word(stamp.publisher, stamp.seq, stamp.sent_ns) {
        return Err("malformed delivery: bad check word");
    }
    if rest != filler {
        return Err("malformed delivery: filler corrupted");
    }
    Ok(stamp)
}

/// Appends a `uringws.v1` binary frame body: `[n][topic][payload]`.
pub fn write_topic_frame(out: &mut Vec<u8>, topic: &[u8]) {
    // Topic names here are `t<number>`, far under 255 bytes.
    out.push(topic.len() as u8);
    out.extend_from_slice(topic);
}

/// Splits a `uringws.v1` binary frame into topic and payload.
pub fn split_topic_frame(frame: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let (&n, rest) = frame
        .split_first()
        .ok_or("malformed delivery: empty frame")?;
    if n == 0 {
        return Err("malformed delivery: no topic");
    }
    if rest.len() < n as usize {
        return Err("malformed delivery: topic cut short");
    }
    Ok(rest.split_at(n as usize))
}

/// A server's JSON reply (`ack`, `error`, …).
#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<String>,
}

/// What a text frame from a `uringws.v1` server says to a subscriber
/// waiting for the ack of request `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ack,
    Error(String),
    /// Anything else: an ack of something else, an error without our id
    /// (still an error, counted), a text message.
    Other(String),
}

/// Classifies a server text frame for the subscribe request `id`.
pub fn answer(text: &str, id: u64) -> Answer {
    let Ok(reply) = serde_json::from_str::<Reply>(text) else {
        return Answer::Other("unexpected text message: not a JSON reply".into());
    };
    let ours = reply.id.as_ref().and_then(serde_json::Value::as_u64) == Some(id);
    match reply.kind.as_str() {
        "ack" if ours => Answer::Ack,
        "error" if ours || reply.id.is_none() => {
            Answer::Error(reply.code.unwrap_or_else(|| "without a code".into()))
        }
        kind => Answer::Other(format!("unexpected text message: {kind}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_every_corruption_caught() {
        let fill = filler(64);
        let stamp = Stamp {
            publisher: 7,
            seq: 123_456,
            sent_ns: 987_654_321_000,
        };
        let mut p = Vec::new();
        write_payload(&mut p, stamp, &fill);
        assert_eq!(p.len(), 64);
        assert_eq!(read_payload(&p, &fill), Ok(stamp));
        // Any single flipped bit anywhere is a failure, never a wrong stamp.
        for byte in 0..p.len() {
            for bit in 0..8 {
                let mut bad = p.clone();
                bad[byte] ^= 1 << bit;
                let got = read_payload(&bad, &fill);
                let want = if byte < HEADER {
                    "malformed delivery: bad check word"
                } else {
                    "malformed delivery: filler corrupted"
                };
                assert_eq!(got, Err(want), "byte {byte} bit {bit}");
            }
        }
        assert_eq!(
            read_payload(&p[..63], &fill),
            Err("malformed delivery: wrong length")
        );
        assert_eq!(
            read_payload(&[], &fill),
            Err("malformed delivery: wrong length")
        );
        // The smallest payload is the header alone.
        let mut p = Vec::new();
        write_payload(&mut p, stamp, &filler(HEADER));
        assert_eq!(read_payload(&p, &[]), Ok(stamp));
    }

    #[test]
    fn topic_frames() {
        let mut f = Vec::new();
        write_topic_frame(&mut f, b"t12");
        f.extend_from_slice(b"payload");
        assert_eq!(f[0], 3);
        assert_eq!(split_topic_frame(&f), Ok((&b"t12"[..], &b"payload"[..])));
        assert_eq!(
            split_topic_frame(&[]),
            Err("malformed delivery: empty frame")
        );
        assert_eq!(
            split_topic_frame(&[0, 1, 2]),
            Err("malformed delivery: no topic")
        );
        assert_eq!(
            split_topic_frame(&[5, b't', b'1']),
            Err("malformed delivery: topic cut short")
        );
        // A topic and nothing else is well formed here; the payload check
        // then refuses it.
        assert_eq!(split_topic_frame(&[1, b'a']), Ok((&b"a"[..], &b""[..])));
    }

    #[test]
    fn replies() {
        assert_eq!(answer(r#"{"type":"ack","id":5}"#, 5), Answer::Ack);
        assert!(matches!(
            answer(r#"{"type":"ack","id":6}"#, 5),
            Answer::Other(_)
        ));
        assert_eq!(
            answer(
                r#"{"type":"error","id":5,"code":"forbidden","message":"no"}"#,
                5
            ),
            Answer::Error("forbidden".into())
        );
        assert_eq!(
            answer(r#"{"type":"error","code":"bad_request"}"#, 5),
            Answer::Error("bad_request".into())
        );
        assert!(matches!(
            answer(r#"{"type":"error","id":"x","code":"bad_request"}"#, 5),
            Answer::Other(_)
        ));
        for junk in ["", "null", "[]", "{", r#"{"id":5}"#, "\u{0}"] {
            assert!(matches!(answer(junk, 5), Answer::Other(_)), "{junk:?}");
        }
    }
}
