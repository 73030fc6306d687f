//! GitHub Actions annotations: `::error file=...,line=...::` pointing at the failing step.

use std::io::Write;

use super::Reporter;
use crate::exec::{Event, Outcome};

pub struct Github<W: Write> {
    out: W,
}

impl<W: Write> Github<W> {
    pub fn new(out: W) -> Self {
        Github { out }
    }
}

/// GitHub resolves annotation paths from the workspace root, which is where the job runs.
fn relative(p: &std::path::Path) -> std::path::PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.to_path_buf()))
        .unwrap_or_else(|| p.to_path_buf())
}

/// Annotation values must not contain newlines; `%`, `\r`, `\n` are escaped as GitHub documents.
fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_prop(s: &str) -> String {
    escape(s).replace(':', "%3A").replace(',', "%2C")
}

impl<W: Write> Reporter for Github<W> {
    fn event(&mut self, ev: &Event) {
        if let Event::CaseFinished(r) = ev {
            if let Outcome::XPassed(reason) = &r.outcome {
                let title = format!("[{}] {}", r.id.kernel, r.id.name());
                let _ = writeln!(
                    self.out,
                    "::error file={},line={},title={}::{}",
                    escape_prop(&relative(&r.file).display().to_string()),
                    r.line,
                    escape_prop(&title),
                    escape(&format!("passed unexpectedly (xfail: {reason})"))
                );
            }
            if let Outcome::Failed(f) = &r.outcome {
                let title = format!("[{}] {}", r.id.kernel, r.id.name());
                let _ = writeln!(
                    self.out,
                    "::error file={},line={},title={}::{}",
                    escape_prop(&relative(&r.file).display().to_string()),
                    f.line,
                    escape_prop(&title),
                    escape(&format!(
                        "{} in step `{}`: {}",
                        f.kind.label(),
                        f.step,
                        f.message
                    ))
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::escape("a\nb%"), "a%0Ab%25");
        assert_eq!(super::escape_prop("a:b,c"), "a%3Ab%2Cc");
    }
}
