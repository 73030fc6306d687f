//! The step protocol over the serial console, both halves in one place: the shell functions the
//! guest agent defines, and the host's encoding of commands and parsing of replies.
//!
//! Host → guest: the command in base64 (`__kc` lines, well under the tty's 4095-byte line limit),
//! then `__kx NONCE TIMEOUT` (foreground) or `__kb NONCE NAME` / `__kw NONCE NAME TIMEOUT SIG`.
//! Guest → host: `\x1eKS:NONCE:O`, stdout in base64, `\x1eKS:NONCE:E`, stderr in base64, then
//! `\x1eKS:NONCE:R rc taint_before taint_after timed_out`. Kernel messages never reach the
//! console (loglevel=1 and reset before each step), and lines that are not base64 are ignored,
//! so stray console output cannot corrupt a reply. Each step's kernel lines are bracketed in
//! /dev/kmsg by `kspec:NONCE:begin` / `kspec:NONCE:end`.

use base64::Engine;

/// Defined once per boot. Each step runs in its own session (setsid) so that a timeout or the
/// end of the step kills everything it started. Nothing is started with `&`: ash gives
/// background children SIGINT/SIGQUIT ignored, which a test of signal handling must not inherit.
/// A foreground step runs under `timeout` (its exit status 137 past the bound); a background one
/// detaches through `setsid setsid` under a wrapper that traps (not ignores) signals and records
/// the command's exit status. The background `sh -c` execs a single command, so a signal reaches
/// the program itself and the status is the program's. A step's taint before is the previous
/// step's taint after: one fork fewer per step.
/// (sysctl files answer EOF at any nonzero offset, so ash's byte-wise `read` cannot read them: cat.)
pub const GUEST_FUNCTIONS: &str = r#"mkdir -p /tmp/ks; __kt=$(cat /proc/sys/kernel/tainted)
__kc() { echo "$1" >> /tmp/ks/c.b64; }
__ko() { printf '\036KS:%s:O\n' "$1"; [ -s "$5" ] && base64 "$5"; printf '\036KS:%s:E\n' "$1"; [ -s "$6" ] && base64 "$6"; printf '\036KS:%s:R %s %s %s %s\n' "$1" "$2" "$3" "$4" "$7"; }
__kx() { base64 -d /tmp/ks/c.b64 > /tmp/ks/c.sh; : > /tmp/ks/c.b64; : > /tmp/ks/fg.pid; echo 1 > /proc/sys/kernel/printk; t0=$__kt; echo "kspec:$1:begin" > /dev/kmsg; timeout -s KILL "$2" setsid sh -c 'echo $$ > /tmp/ks/fg.pid; . /tmp/ks/c.sh' < /dev/null > /tmp/ks/o 2> /tmp/ks/e; rc=$?; read p < /tmp/ks/fg.pid; [ -n "$p" ] && kill -KILL -$p 2>/dev/null; echo "kspec:$1:end" > /dev/kmsg; __kt=$(cat /proc/sys/kernel/tainted); __ko "$1" $rc $t0 $__kt /tmp/ks/o /tmp/ks/e 0; }
__kb() { base64 -d /tmp/ks/c.b64 > "/tmp/ks/$2.sh"; : > /tmp/ks/c.b64; rm -f "/tmp/ks/$2.rc" "/tmp/ks/$2.pid"; echo $__kt > "/tmp/ks/$2.t0"; echo "kspec:$1:begin" > /dev/kmsg; setsid setsid sh -c 'd=/tmp/ks/$0; echo $$ > $d.pid.t; mv $d.pid.t $d.pid; trap : TERM INT HUP QUIT USR1 USR2; sh -c "$(cat $d.sh)" < /dev/null > $d.o 2> $d.e; echo $? > $d.rc.t; mv $d.rc.t $d.rc' "$2" < /dev/null > /dev/null 2>&1; while [ ! -e "/tmp/ks/$2.pid" ]; do sleep 0.01; done; printf '\036KS:%s:R 0 %s %s 0\n' "$1" $__kt $__kt; }
__kw() { read p < "/tmp/ks/$2.pid"; [ "$4" = - ] || kill -$4 -$p 2>/dev/null; n=0; to=0; while [ ! -e "/tmp/ks/$2.rc" ] && kill -0 $p 2>/dev/null && [ $n -lt $3 ]; do sleep 0.02; n=$((n+20)); done; if [ -e "/tmp/ks/$2.rc" ]; then read rc < "/tmp/ks/$2.rc"; elif kill -0 $p 2>/dev/null; then to=1; rc=137; else rc=137; fi; kill -KILL -$p 2>/dev/null; echo "kspec:$1:end" > /dev/kmsg; __kt=$(cat /proc/sys/kernel/tainted); read t0 < "/tmp/ks/$2.t0"; __ko "$1" $rc $t0 $__kt "/tmp/ks/$2.o" "/tmp/ks/$2.e" $to; }
"#;

const CHUNK: usize = 1024;

/// `__kc` lines carrying `script` in base64.
pub fn encode_command(script: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(script.as_bytes());
    let mut lines: Vec<String> = b64
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| format!("__kc {}", String::from_utf8_lossy(c)))
        .collect();
    if lines.is_empty() {
        lines.push("__kc ''".into());
    }
    lines
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: i32,
    pub taint_before: u64,
    pub taint_after: u64,
    pub timed_out: bool,
}

pub fn result_marker(nonce: &str) -> String {
    format!("\x1eKS:{nonce}:R ")
}

/// Parse a complete reply: `buf` holds everything up to and including the R line.
pub fn parse_reply(buf: &[u8], nonce: &str) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(buf);
    let o = format!("\x1eKS:{nonce}:O");
    let e = format!("\x1eKS:{nonce}:E");
    let r = result_marker(nonce);
    let ri = text.rfind(&r).ok_or("reply has no result line")?;
    let rline = text[ri + r.len()..].lines().next().unwrap_or("");
    let nums: Vec<u64> = rline
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    let (stdout, stderr) = match (text[..ri].rfind(&o), text[..ri].rfind(&e)) {
        (Some(oi), Some(ei)) if oi < ei => (
            decode(&text[oi + o.len()..ei])?,
            decode(&text[ei + e.len()..ri])?,
        ),
        (None, None) => (Vec::new(), Vec::new()),
        _ => return Err("reply has a malformed output section".into()),
    };
    let get = |i: usize| nums.get(i).copied().unwrap_or(0);
    Ok(Reply {
        stdout,
        stderr,
        exit: get(0) as i32,
        taint_before: get(1),
        taint_after: get(2),
        timed_out: get(3) == 1,
    })
}

/// Decode base64 lines, skipping anything else that reached the console.
fn decode(section: &str) -> Result<Vec<u8>, String> {
    let mut b64 = String::new();
    for line in section.lines().map(|l| l.trim_end_matches('\r')) {
        if !line.is_empty()
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            b64.push_str(line);
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("bad base64 in reply: {e}"))
}

/// CRLF → LF: what specs compare against.
pub fn normalise_newlines(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_short_lines() {
        let script = "x".repeat(5000);
        let lines = encode_command(&script);
        assert!(lines.iter().all(|l| l.len() <= CHUNK + 5));
        let joined: String = lines.iter().map(|l| &l[5..]).collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap(),
            script.as_bytes()
        );
    }

    #[test]
    fn parses_reply_with_noise() {
        let buf = b"junk\r\n\x1eKS:n1:O\r\naGVsbG8K\r\n[  12.3] kernel noise line\r\n\x1eKS:n1:E\r\n\x1eKS:n1:R 3 0 4096 0\r\n";
        let r = parse_reply(buf, "n1").unwrap();
        assert_eq!(r.stdout, b"hello\n");
        assert!(r.stderr.is_empty());
        assert_eq!(
            (r.exit, r.taint_before, r.taint_after, r.timed_out),
            (3, 0, 4096, false)
        );
    }

    #[test]
    fn binary_output_survives() {
        let data: Vec<u8> = (0..=255).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let buf = format!("\x1eKS:z:O\n{b64}\n\x1eKS:z:E\n\x1eKS:z:R 0 0 0 1\n");
        let r = parse_reply(buf.as_bytes(), "z").unwrap();
        assert_eq!(r.stdout, data);
        assert!(r.timed_out);
        assert_eq!(normalise_newlines(b"a\r\nb\rc\n"), b"a\nb\rc\n");
    }
}
