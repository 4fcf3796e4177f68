//! The messages whose JSON is not an object of their fields: what their Go types marshal to.

use serde_json::Value;

use super::decode::{lossy, unknown};
use super::table::{Message, Special};
use super::wire::{Reader, LEN, VARINT};
use super::{ProtoError, MAGIC, MAX_DEPTH};

/// Seconds since the epoch of Go's zero `time.Time` (year 1), which marshals as null.
const GO_ZERO_TIME: i64 = -62_135_596_800;
/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: Go's RFC 3339 marshalling refuses others.
const MIN_SECONDS: i64 = -62_167_219_200;
const END_SECONDS: i64 = 253_402_300_800;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The JSON of a special message, `None` for null.
pub(super) fn decode(
    buf: &[u8],
    msg: &'static Message,
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    let fields = Fields::read(buf, msg)?;
    Ok(match msg.special {
        // An empty message is Go's zero time; a time's nanoseconds are not kept.
        Special::Time if buf.is_empty() => None,
        Special::Time => rfc3339(fields.varint(1), 0, false)?.map(Value::String),
        Special::MicroTime if buf.is_empty() => None,
        Special::MicroTime => {
            rfc3339(fields.varint(1), fields.varint(2) as i32, true)?.map(Value::String)
        }
        Special::Duration => Some(Value::String(go_duration(fields.varint(1)))),
        Special::IntOrString => Some(match fields.varint(1) {
            0 => Value::from(fields.varint(2) as i32),
            1 => Value::String(lossy(fields.bytes())),
            other => return Err(ProtoError::InvalidIntOrString(other)),
        }),
        Special::Quantity => Some(Value::String(match fields.len_field {
            Some(b) => lossy(b),
            None => "0".to_string(),
        })),
        Special::RawJson | Special::RawExtension => {
            let raw = fields.bytes();
            if raw.is_empty() {
                None
            } else if msg.special == Special::RawExtension && raw.starts_with(MAGIC) {
                if depth >= MAX_DEPTH {
                    return Err(ProtoError::TooDeep);
                }
                Some(unknown(raw, depth + 1)?.2)
            } else {
                Some(
                    serde_json::from_slice(raw).map_err(|e| ProtoError::InvalidJson {
                        message: msg.name,
                        reason: e.to_string(),
                    })?,
                )
            }
        }
        Special::None | Special::Items => unreachable!("not a hand-decoded message"),
    })
}

/// The fields of a special message: up to two varints, or one length-delimited field.
#[derive(Default)]
struct Fields<'a> {
    varints: [Option<u64>; 2],
    len_field: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn read(buf: &'a [u8], msg: &'static Message) -> Result<Self, ProtoError> {
        // The layouts: which tags are varints, which one is length-delimited.
        let (varint_tags, len_tag): (&[u32], u32) = match msg.special {
            Special::Time | Special::MicroTime => (&[1, 2], 0),
            Special::Duration => (&[1], 0),
            Special::IntOrString => (&[1, 2], 3),
            _ => (&[], 1),
        };
        let mut fields = Fields::default();
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let (tag, wire_type) = r.key()?;
            let expected = if tag == len_tag {
                LEN
            } else if varint_tags.contains(&tag) {
                VARINT
            } else {
                r.skip(tag, wire_type, MAX_DEPTH)?;
                continue;
            };
            if wire_type != expected {
                return Err(ProtoError::WireType {
                    message: msg.name,
                    field: tag,
                    wire_type,
                });
            }
            if expected == LEN {
                fields.len_field = Some(r.bytes()?);
            } else {
                fields.varints[tag as usize - 1] = Some(r.varint()?);
            }
        }
        Ok(fields)
    }

    /// Varint field 1 or 2 (0 when absent).
    fn varint(&self, tag: u32) -> i64 {
        self.varints[tag as usize - 1].unwrap_or(0) as i64
    }

    /// The length-delimited field (empty when absent).
    fn bytes(&self) -> &'a [u8] {
        self.len_field.unwrap_or_default()
    }
}

/// `time.Unix(seconds, nanos)` as Go's `RFC3339` (or `RFC3339Micro`) in UTC; `None` for Go's
/// zero time, which marshals as null.
fn rfc3339(seconds: i64, nanos: i32, micro: bool) -> Result<Option<String>, ProtoError> {
    let nanos = i64::from(nanos);
    let seconds = seconds
        .checked_add(nanos.div_euclid(NANOS_PER_SECOND))
        .ok_or(ProtoError::TimeOutOfRange { seconds })?;
    let nanos = nanos.rem_euclid(NANOS_PER_SECOND);
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(None);
    }
    if !(MIN_SECONDS..END_SECONDS).contains(&seconds) {
        return Err(ProtoError::TimeOutOfRange { seconds });
    }
    let ts = jiff::Timestamp::from_second(seconds)
        .map_err(|_| ProtoError::TimeOutOfRange { seconds })?;
    let mut out = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        out.push_str(&format!(".{:06}", nanos / 1000));
    }
    out.push('Z');
    Ok(Some(out))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", decimal(n, 3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", decimal(n, 6));
    }
    let total_seconds = n / 1_000_000_000;
    let seconds = decimal(n % 60_000_000_000, 9);
    let minutes = total_seconds / 60 % 60;
    let hours = total_seconds / 3600;
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `v / 10^digits` with its fraction, trailing zeros (and a bare point) removed.
fn decimal(v: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-2_000_000, "-2ms"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_795_309_323, 0, false).unwrap().as_deref(),
            Some("2026-11-22T01:02:03Z")
        );
        assert_eq!(
            rfc3339(1_795_309_323, 123_456_789, true)
                .unwrap()
                .as_deref(),
            Some("2026-11-22T01:02:03.123456Z")
        );
        assert_eq!(
            rfc3339(0, -1, true).unwrap().as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(rfc3339(GO_ZERO_TIME, 0, false), Ok(None));
        assert!(rfc3339(END_SECONDS, 0, false).is_err());
        assert!(rfc3339(i64::MAX, i32::MAX, true).is_err());
        assert_eq!(
            rfc3339(MIN_SECONDS, 0, false).unwrap().as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
    }
}
