//! A Markdown summary of JSON-lines reports (`kspec run --json-file`), for CI job summaries:
//! one table of specs by kernel, then every failed case. Reads the files back rather than
//! the live run, so one summary can cover the reports of several jobs.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Error;

#[derive(Default, Clone, Copy)]
struct Cell {
    passed: usize,
    failed: usize,
    skipped: usize,
}

/// The Markdown for the case records in `reports` (each a file's text); lines that are not
/// case records (boot, summary) are ignored, a line that is not JSON is an error.
pub fn markdown(reports: &[(String, String)]) -> Result<String, Error> {
    let mut kernels: Vec<String> = Vec::new();
    let mut cells: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, text) in reports {
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::Input(format!("{name}:{}: not a JSON line: {e}", i + 1)))?;
            let Some(outcome) = v.get("outcome").and_then(|o| o.as_str()) else {
                continue;
            };
            let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_owned();
            let kernel = field("kernel");
            if !kernels.contains(&kernel) {
                kernels.push(kernel.clone());
            }
            let cell = cells
                .entry(field("spec"))
                .or_default()
                .entry(kernel.clone())
                .or_default();
            match outcome {
                // An expected failure is what the spec says should happen.
                "passed" | "xfailed" => cell.passed += 1,
                "skipped" => cell.skipped += 1,
                _ => {
                    cell.failed += 1;
                    let message = v
                        .pointer("/failure/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    failures.push(format!(
                        "- **[{kernel}] {}::{}** ({}:{}): {}",
                        field("spec"),
                        field("case"),
                        field("file"),
                        v.get("line").and_then(|l| l.as_u64()).unwrap_or(0),
                        message.replace('|', "\\|")
                    ));
                }
            }
        }
    }
    let mut out = String::from("## kspec\n\n| spec |");
    for k in &kernels {
        let _ = write!(out, " {k} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(kernels.len()));
    out.push('\n');
    let mut total = vec![Cell::default(); kernels.len()];
    for (spec, by_kernel) in &cells {
        let _ = write!(out, "| {spec} |");
        for (i, k) in kernels.iter().enumerate() {
            let c = by_kernel.get(k).copied().unwrap_or_default();
            total[i].passed += c.passed;
            total[i].failed += c.failed;
            total[i].skipped += c.skipped;
            let _ = write!(out, " {} |", render(c));
        }
        out.push('\n');
    }
    out.push_str("| **all** |");
    for c in &total {
        let _ = write!(out, " **{}** |", render(*c));
    }
    out.push('\n');
    if !failures.is_empty() {
        out.push_str("\n### Failed\n\n");
        out.push_str(&failures.join("\n"));
        out.push('\n');
    }
    Ok(out)
}

fn render(c: Cell) -> String {
    if c.passed + c.failed + c.skipped == 0 {
        return "–".into();
    }
    let mut s = format!("{} passed", c.passed);
    if c.failed > 0 {
        let _ = write!(s, ", {} failed", c.failed);
    }
    if c.skipped > 0 {
        let _ = write!(s, ", {} skipped", c.skipped);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_by_kernel_with_the_failures_listed() {
        let a = r#"{"type":"boot","kernel":"6.12"}
{"kernel":"6.12","spec":"proc","case":"a","file":"specs/proc.yaml","line":3,"outcome":"passed"}
{"kernel":"6.12","spec":"proc","case":"b","file":"specs/proc.yaml","line":9,"outcome":"failed","failure":{"message":"exit 1 | expected 0\nmore"}}
{"type":"summary","passed":1,"failed":1,"skipped":0}
"#;
        let b = r#"{"kernel":"7.3","spec":"proc","case":"a","file":"specs/proc.yaml","line":3,"outcome":"skipped"}
{"kernel":"7.3","spec":"mmap","case":"m","file":"specs/mmap.yaml","line":2,"outcome":"passed"}
"#;
        let md = markdown(&[("a".into(), a.into()), ("b".into(), b.into())]).unwrap();
        assert_eq!(
            md,
            "## kspec\n\n| spec | 6.12 | 7.3 |\n|---|---|---|\n\
             | mmap | – | 1 passed |\n\
             | proc | 1 passed, 1 failed | 0 passed, 1 skipped |\n\
             | **all** | **1 passed, 1 failed** | **1 passed, 1 skipped** |\n\n\
             ### Failed\n\n- **[6.12] proc::b** (specs/proc.yaml:9): exit 1 \\| expected 0\n"
        );
        assert!(markdown(&[("bad".into(), "{not json".into())])
            .unwrap_err()
            .to_string()
            .starts_with("bad:1:"));
    }
}
