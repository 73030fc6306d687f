//! Printing bytes and parsing user-given bytes and numbers.
//!
//! Escaping: printable ASCII (0x20..=0x7e) is printed as is, except the backslash; every other
//! byte, and the backslash itself, is printed as `\xNN` (two lowercase hex digits). The result
//! is always one line of ASCII and maps back to the bytes unambiguously.

use std::fmt::Write as _;

/// Escape `bytes` for one line of output.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// The bytes before the first NUL (all of them if there is none).
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// Parse hex bytes: pairs of hex digits, an optional leading `0x`, and any whitespace, `:`,
/// `-` or `_` between them ignored. `""` is zero bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|b| !(b.is_ascii_whitespace() || matches!(b, b':' | b'-' | b'_')))
        .collect();
    if digits.len() & 1 == 1 {
        return Err(format!("odd number of hex digits in {s:?}"));
    }
    let nibble = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("invalid hex digit {:?} in {s:?}", c as char)),
        }
    };
    digits
        .chunks(2)
        .map(|p| Ok((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// Parse an unsigned number: decimal, `0x` hex, `0o` octal or `0b` binary; `_` allowed.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = t.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = t.strip_prefix("0b") {
        (b, 2)
    } else {
        (t.as_str(), 10)
    };
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return Err(format!("invalid number {s:?}"));
    }
    u64::from_str_radix(digits, radix).map_err(|e| format!("invalid number {s:?}: {e}"))
}

/// Parse a signed number (a leading `-` then [`parse_u64`] syntax).
pub fn parse_i64(s: &str) -> Result<i64, String> {
    let t = s.trim();
    match t.strip_prefix('-') {
        Some(rest) => {
            let v = parse_u64(rest)?;
            if v <= i64::MAX as u64 + 1 {
                Ok((v as i64).wrapping_neg())
            } else {
                Err(format!("number {s:?} out of range"))
            }
        }
        None => i64::try_from(parse_u64(t)?).map_err(|_| format!("number {s:?} out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape(b"a message\n"), "a message\\x0a");
        assert_eq!(escape(b"\0\x7f\xff ~"), "\\x00\\x7f\\xff ~");
        assert_eq!(escape(b"a\\b"), "a\\x5cb");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn nul() {
        assert_eq!(until_nul(b"abc\0def"), b"abc");
        assert_eq!(until_nul(b"abc"), b"abc");
        assert_eq!(until_nul(b"\0"), b"");
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("00ff10").unwrap(), vec![0, 0xff, 0x10]);
        assert_eq!(
            parse_hex("0xDEAD beef").unwrap(),
            vec![0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(
            parse_hex("de:ad-be_ef").unwrap(),
            vec![0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("128"), Ok(128));
        assert_eq!(parse_u64("0x80"), Ok(128));
        assert_eq!(parse_u64("0o200"), Ok(128));
        assert_eq!(parse_u64("0b1000_0000"), Ok(128));
        assert!(parse_u64("").is_err());
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("0x").is_err());
        assert!(parse_u64("99999999999999999999999").is_err());
        assert_eq!(parse_i64("-5"), Ok(-5));
        assert_eq!(parse_i64("-0x8000000000000000"), Ok(i64::MIN));
        assert!(parse_i64("--5").is_err());
        assert!(parse_i64("0x8000000000000000").is_err());
    }
}
