//! The guest's kernel log, as /dev/kmsg records forwarded to a file through ttyS1. Records carry
//! sequence numbers, so a step's lines are exactly those between its begin and end markers.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

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

pub struct KmsgLog {
    path: PathBuf,
    offset: u64,
    partial: String,
    records: Vec<KmsgRecord>,
    max_seq: Option<u64>,
}

impl KmsgLog {
    pub fn new(path: PathBuf) -> Self {
        KmsgLog {
            path,
            offset: 0,
            partial: String::new(),
            records: Vec::new(),
            max_seq: None,
        }
    }

    /// Read what the guest forwarded since the last call.
    pub fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            if let Some(r) = parse_record(&line) {
                // The forwarder reopens /dev/kmsg after an overrun and replays: keep seqs unique.
                if self.max_seq.is_none_or(|m| r.seq > m) {
                    self.max_seq = Some(r.seq);
                    self.records.push(r);
                }
            }
        }
    }

    fn marker_index(&self, marker: &str) -> Option<usize> {
        self.records.iter().rposition(|r| r.text == marker)
    }

    /// Records strictly between the begin and end markers of `nonce`, waiting up to `wait` for
    /// the end marker to arrive. None if it never did.
    pub fn between(
        &mut self,
        begin_nonce: &str,
        end_nonce: &str,
        wait: std::time::Duration,
    ) -> Option<Vec<KmsgRecord>> {
        let begin = format!("kspec:{begin_nonce}:begin");
        let end = format!("kspec:{end_nonce}:end");
        let deadline = std::time::Instant::now() + wait;
        loop {
            self.poll();
            if let Some(e) = self.marker_index(&end) {
                let b = self.marker_index(&begin).map_or(0, |b| b + 1);
                return Some(
                    self.records[b.min(e)..e]
                        .iter()
                        .filter(|r| !is_marker(&r.text))
                        .cloned()
                        .collect(),
                );
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The last `n` records (for crash reports).
    pub fn tail(&mut self, n: usize) -> Vec<KmsgRecord> {
        self.poll();
        let start = self.records.len().saturating_sub(n);
        self.records[start..].to_vec()
    }
}

fn is_marker(text: &str) -> bool {
    text.starts_with("kspec:") && (text.ends_with(":begin") || text.ends_with(":end"))
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

    #[test]
    fn selects_between_markers_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "6,1,0,-;boot\n12,2,0,-;kspec:a:begin\n6,3,0,-;inside\n6,1,0,-;boot\n12,4,0,-;kspec:a:end\n").unwrap();
        let mut k = KmsgLog::new(p);
        let got = k.between("a", "a", std::time::Duration::ZERO).unwrap();
        assert_eq!(
            got.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            vec!["inside"]
        );
        assert!(k.between("b", "b", std::time::Duration::ZERO).is_none());
    }
}
