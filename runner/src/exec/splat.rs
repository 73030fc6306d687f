//! Kernel reports that fail a step unless the spec allows them: BUG, Oops, WARNING, call traces,
//! KASAN/UBSAN/KFENCE/lockdep reports, panics, and new taint flags.

use crate::vm::KmsgRecord;

/// (kind, substring) — the kind is what `allow:` names.
const PATTERNS: &[(&str, &str)] = &[
    ("bug", "BUG:"),
    ("bug", "kernel BUG at"),
    ("oops", "Oops:"),
    ("oops", "Oops#"),
    ("warning", "WARNING:"),
    ("warning", "------------[ cut here ]"),
    ("call_trace", "Call Trace:"),
    ("kasan", "KASAN:"),
    ("ubsan", "UBSAN:"),
    ("kfence", "KFENCE:"),
    ("lockdep", "possible recursive locking"),
    ("lockdep", "possible circular locking"),
    ("lockdep", "inconsistent lock state"),
    ("lockdep", "suspicious RCU usage"),
    ("lockdep", "INFO: lockdep"),
    ("panic", "Kernel panic"),
];

/// Taint bits every kchan run has: O (out-of-tree module, 4096) and E (unsigned module, 8192).
const EXPECTED_TAINT: u64 = (1 << 12) | (1 << 13);

/// Taint letters by bit, as in Documentation/admin-guide/tainted-kernels.rst.
const TAINT_LETTERS: &str = "PFSRMBUDAWCIOELKXTN";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: &'static str,
    pub line: String,
}

/// Reports in `kmsg` whose kind is not allowed.
pub fn find(kmsg: &[KmsgRecord], allow: &[String]) -> Vec<Report> {
    let all = allow.iter().any(|a| a == "all");
    let mut out = Vec::new();
    for r in kmsg {
        if let Some((kind, _)) = PATTERNS.iter().find(|(_, pat)| r.text.contains(pat)) {
            if !all && !allow.iter().any(|a| a == kind) {
                out.push(Report {
                    kind,
                    line: r.text.clone(),
                });
            }
        }
    }
    out
}

/// New taint flags (letters) not explained by what the step was allowed to produce.
pub fn new_taint(before: u64, after: u64, allow: &[String]) -> Option<String> {
    if allow.iter().any(|a| a == "all" || a == "taint") {
        return None;
    }
    let mut allowed = EXPECTED_TAINT;
    if allow.iter().any(|a| a == "warning") {
        allowed |= 1 << 9; // W
    }
    if allow.iter().any(|a| a == "bug" || a == "oops") {
        allowed |= 1 << 7; // D
    }
    let new = after & !before & !allowed;
    (new != 0).then(|| taint_letters(new))
}

pub fn taint_letters(bits: u64) -> String {
    TAINT_LETTERS
        .chars()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: &str) -> KmsgRecord {
        KmsgRecord {
            seq: 0,
            level: 4,
            ts_us: 0,
            text: t.into(),
        }
    }

    #[test]
    fn finds_reports_unless_allowed() {
        let k = vec![
            rec("kchan: hello"),
            rec("WARNING: CPU: 0 PID: 1 at x.c:1"),
            rec("BUG: KASAN: slab-out-of-bounds"),
        ];
        let f = find(&k, &[]);
        assert_eq!(
            f.iter().map(|r| r.kind).collect::<Vec<_>>(),
            vec!["warning", "bug"]
        );
        assert_eq!(find(&k, &["warning".into(), "bug".into()]).len(), 0);
        assert!(find(&k, &["all".into()]).is_empty());
    }

    #[test]
    fn taint() {
        assert_eq!(new_taint(0, 4096, &[]), None);
        assert_eq!(new_taint(4096, 4096 | 512, &[]), Some("W".into()));
        assert_eq!(new_taint(0, 512, &["warning".into()]), None);
        assert_eq!(new_taint(0, 128 | 1, &[]), Some("PD".into()));
    }
}
