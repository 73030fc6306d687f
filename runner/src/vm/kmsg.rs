//! The guest's kernel log: /dev/kmsg records as the agent forwards them. Their sequence numbers
//! show records the kernel overwrote before they were read.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub seq: u64,
    /// Syslog level 0 (emerg) .. 7 (debug).
    pub level: u8,
    pub ts_us: u64,
    pub text: String,
}

/// Parse one /dev/kmsg line: "pri,seq,ts,flags[,..];text". Continuation lines start with a space.
pub fn parse_record(line: &str) -> Option<KmsgRecord> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with(' ') {
        return None;
    }
    let (head, text) = line.split_once(';')?;
    let mut f = head.split(',');
    let pri: u32 = f.next()?.trim().parse().ok()?;
    let seq = f.next()?.parse().ok()?;
    let ts_us = f.next()?.parse().ok()?;
    Some(KmsgRecord {
        seq,
        level: (pri & 7) as u8,
        ts_us,
        text: unescape(text),
    })
}

/// /dev/kmsg writes `\`, control bytes and bytes >= 0x7f as `\xNN`: undo that transport
/// escaping so specs see what the kernel printed.
fn unescape(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kmsg_lines() {
        let r = parse_record("6,812,1234567,-;kchan: loaded (netlink unit 31)\r\n").unwrap();
        assert_eq!((r.seq, r.level, r.ts_us), (812, 6, 1234567));
        assert_eq!(r.text, "kchan: loaded (netlink unit 31)");
        assert_eq!(
            parse_record("12,9,5,-,caller=T1;user;text").unwrap().text,
            "user;text"
        );
        assert!(parse_record(" SUBSYSTEM=net").is_none());
        assert!(parse_record("garbage").is_none());
        // The module printed `A\xff` (escaped itself); kmsg escaped its backslash again.
        assert_eq!(
            parse_record("6,1,0,-;kchan: A\\x5cxff \\x09tab")
                .unwrap()
                .text,
            "kchan: A\\xff \ttab"
        );
    }
}
