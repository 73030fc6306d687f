//! KTAP parser (Documentation/dev-tools/ktap.rst, KTAP version 1, and the TAP 13/14 shapes older
//! KUnit and kselftest print): turns a document, possibly still inside a dmesg dump, into a flat
//! list of results so each KUnit case or kselftest test can be reported on its own.
//!
//! Nesting follows indentation (KTAP: 2 spaces, KUnit: 4 spaces, older KUnit: tabs): a version
//! line, "# Subtest:" header or plan deeper than the open level opens a subtest, and a result line
//! shallower than it is the subtest's own result. Unknown lines never affect structure: they are
//! diagnostics of the next result line, as KUnit prints a case's log just before its result.
//!
//! When the output stops early (end of input, "Bail out!", a subtest without its result line),
//! each planned but missing test is reported as a failure, so a case that crashed the kernel is
//! not silently absent; the lines left over (the panic) become its diagnostics.

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KtapOutcome {
    Pass,
    Fail,
    /// `# SKIP reason` (with "ok" or "not ok"), or a subtest planned as `1..0 # SKIP reason`.
    Skip(String),
    /// `# XFAIL` (kselftest prints it with "ok"), or "not ok" with `# TODO`.
    ExpectedFail,
}

/// One leaf test, or a parent whose own result carries information its children do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtapResult {
    /// Path of names from the top, joined by '/': "list-kunit-test/list_test_list_init". A test
    /// without a description is named by its number.
    pub name: String,
    pub outcome: KtapOutcome,
    /// Unknown and "# ..." lines printed since the previous result line, dedented; then the
    /// result line's own `# ...` text unless it was a SKIP reason.
    pub diagnostics: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KtapReport {
    pub results: Vec<KtapResult>,
    /// Inconsistencies (plan mismatch, missing version or result line, unparsable result line,
    /// Bail out!); empty when the document is consistent.
    pub problems: Vec<String>,
}

/// A plan of 1..1000000 in a truncated document must not become a million results: at most
/// this many missing tests are reported as failures per document.
const MAX_MISSING: usize = 1000;

pub fn parse(text: &str) -> KtapReport {
    let mut p = Parser {
        stack: vec![Frame::default()],
        ..Parser::default()
    };
    for line in text.lines() {
        p.lineno += 1;
        if !p.line(line) {
            break;
        }
    }
    p.finish();
    KtapReport {
        results: p.out,
        problems: p.problems,
    }
}

#[derive(Debug, PartialEq)]
enum Line<'a> {
    Version,
    Subtest(&'a str),
    Plan(usize, Option<String>),
    Result(ResultLine<'a>),
    BailOut,
    /// Starts like a result or plan line but does not parse.
    Bad,
    Other,
}

#[derive(Debug, Default, PartialEq)]
struct ResultLine<'a> {
    ok: bool,
    number: usize,
    description: &'a str,
    directive: Option<&'a str>,
}

/// `body` has no indentation and no trailing whitespace.
fn classify(body: &str) -> Line<'_> {
    let version = body
        .strip_prefix("KTAP version ")
        .or(body.strip_prefix("TAP version "));
    if version.is_some_and(is_digits) {
        return Line::Version;
    }
    if let Some(name) = body.strip_prefix("# Subtest:") {
        return Line::Subtest(name.trim());
    }
    if body.starts_with("Bail out!") {
        return Line::BailOut;
    }
    if let Some(rest) = body.strip_prefix("1..") {
        let Some((n, after)) = leading_number(rest) else {
            return Line::Other;
        };
        let Ok(n) = n else { return Line::Bad };
        let directive = split_directive(after.trim_start()).1;
        return match directive.map(|d| directive_outcome(true, d)) {
            Some(KtapOutcome::Skip(reason)) => Line::Plan(n, Some(reason)),
            _ => Line::Plan(n, None),
        };
    }
    result_line(body)
}

fn result_line(body: &str) -> Line<'_> {
    let ok = !body.starts_with("not ok");
    let Some(rest) = body.strip_prefix(if ok { "ok" } else { "not ok" }) else {
        return Line::Other;
    };
    // "okay", "ok." are prose, not malformed result lines.
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Line::Other;
    }
    let Some((Ok(number), after)) = leading_number(rest.trim_start()) else {
        return Line::Bad;
    };
    let (description, directive) = split_directive(after.trim_start());
    let description = match description.strip_prefix('-') {
        Some(d) if d.is_empty() || d.starts_with([' ', '\t']) => d.trim_start(),
        _ => description,
    };
    Line::Result(ResultLine {
        ok,
        number,
        description,
        directive,
    })
}

/// "12 rest" -> (12, " rest"): digits ending at whitespace or the end of the line. The number is
/// an error when it overflows.
fn leading_number(s: &str) -> Option<(Result<usize, std::num::ParseIntError>, &str)> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (n, after) = s.split_at(digits);
    let ends = after.is_empty() || after.starts_with([' ', '\t']);
    (digits > 0 && ends).then(|| (n.parse(), after))
}

/// Splits "description # directive" at the first '#' that stands alone as a word: a description
/// may contain '#' ("test#1") but not " # ".
fn split_directive(s: &str) -> (&str, Option<&str>) {
    let b = s.as_bytes();
    for (i, _) in s.match_indices('#') {
        let before = i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t';
        let after = i + 1 == b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t';
        if before && after {
            return (s[..i].trim_end(), Some(s[i + 1..].trim()));
        }
    }
    (s, None)
}

/// Directive keywords are case-insensitive; an unknown one falls back to ok / not ok (spec).
fn directive_outcome(ok: bool, directive: &str) -> KtapOutcome {
    let (word, reason) = directive.split_once([' ', '\t']).unwrap_or((directive, ""));
    let word = word.trim_end_matches(':').to_ascii_lowercase();
    if word.starts_with("skip") {
        KtapOutcome::Skip(reason.trim().to_owned())
    } else if word == "xfail" || (word == "todo" && !ok) {
        KtapOutcome::ExpectedFail
    } else if ok {
        KtapOutcome::Pass
    } else {
        KtapOutcome::Fail
    }
}

/// Strips "<6>" (syslog level), "[    1.234567]" (printk time) and "[    T1]" (printk caller)
/// and the one space printk puts after them: people paste dmesg output.
fn strip_log_prefix(line: &str) -> &str {
    let s = bracketed(line, '<', '>', |t| t.len() <= 3 && is_digits(t)).unwrap_or(line);
    let time = |t: &str| {
        t.split_once('.')
            .is_some_and(|(a, b)| is_digits(a) && is_digits(b))
    };
    let Some(s) = bracketed(s, '[', ']', time) else {
        return s;
    };
    let caller = |t: &str| t.strip_prefix(['T', 'C']).is_some_and(is_digits);
    let s = bracketed(s, '[', ']', caller).unwrap_or(s);
    s.strip_prefix(' ').unwrap_or(s)
}

fn bracketed(s: &str, open: char, close: char, ok: impl Fn(&str) -> bool) -> Option<&str> {
    let rest = s.strip_prefix(open)?;
    let end = rest.find(close)?;
    ok(rest[..end].trim_start()).then(|| &rest[end + 1..])
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// ASCII only, so byte offsets taken from one line are char boundaries in any other (dedent).
fn indent_of(s: &str) -> usize {
    s.len() - s.trim_start_matches([' ', '\t']).len()
}

/// One open level: the top-level document, or a subtest whose result line has not come yet.
#[derive(Debug, Default)]
struct Frame {
    /// Indentation of its version, plan and result lines; None until the document's first one.
    indent: Option<usize>,
    /// From "# Subtest: name"; KTAP v1 without it names the subtest only in its result line.
    name: Option<String>,
    plan: Option<usize>,
    plan_skip: Option<String>,
    /// Direct children seen (result lines and closed subtests).
    count: usize,
    /// Flattened results, named relative to this level.
    results: Vec<KtapResult>,
}

impl Frame {
    fn fresh(&self) -> bool {
        self.plan.is_none() && self.count == 0
    }
}

#[derive(Default)]
struct Parser {
    /// stack[0] is the top level; never empty.
    stack: Vec<Frame>,
    /// Lines waiting for the next result line.
    pending: Vec<String>,
    /// TAP14 draft: "# Subtest: name" at the parent's indentation names the next deeper level.
    pending_name: Option<String>,
    seen_version: bool,
    /// The first version line was indented: its level is a subtest of an unprinted top level.
    implied_top: bool,
    warned_no_version: bool,
    /// Missing tests reported as failures so far (see MAX_MISSING).
    synthesized: usize,
    lineno: usize,
    out: Vec<KtapResult>,
    problems: Vec<String>,
}

impl Parser {
    /// Returns false after "Bail out!": the producer gave up, nothing after it is its output.
    fn line(&mut self, raw: &str) -> bool {
        let text = strip_log_prefix(raw.trim_end());
        let indent = indent_of(text);
        let body = text[indent..].trim_end();
        match classify(body) {
            Line::Version => self.version(indent),
            Line::Subtest(name) => self.subtest(indent, name),
            Line::Plan(n, skip) => self.plan(indent, n, skip),
            Line::Result(r) => self.result(indent, &r),
            Line::BailOut => {
                self.problem_here(body.to_owned());
                self.pending.push(text.to_owned());
                return false;
            }
            Line::Bad => {
                self.problem_here(format!("unparsable result or plan line: {body}"));
                self.pending.push(text.to_owned());
            }
            Line::Other if body.is_empty() => {}
            Line::Other => self.pending.push(text.to_owned()),
        }
        true
    }

    fn version(&mut self, indent: usize) {
        let first = !self.seen_version;
        self.seen_version = true;
        if first && self.stack.len() == 1 && self.stack[0].fresh() {
            // The kernel log before the document belongs to no test.
            self.pending.clear();
            self.stack[0].indent = Some(0);
            if indent > 0 {
                // No top-level header (older KUnit's debugfs results, a capture started late):
                // this opens a subtest of an implied top level.
                self.implied_top = true;
                self.push(indent);
            }
            return;
        }
        self.close_deeper_than(indent);
        let top = self.top();
        match top.indent {
            Some(i) if i < indent => self.push(indent),
            Some(i) if i == indent && top.fresh() => {} // repeated version line
            _ if self.stack.len() == 1 => {
                // Another document: KUnit prints one per module load.
                self.finish_top();
                self.stack[0].indent = Some(indent);
            }
            _ => {
                self.close_incomplete();
                self.push(indent);
            }
        }
    }

    fn subtest(&mut self, indent: usize, name: &str) {
        self.close_deeper_than(indent);
        let nested = self.stack.len() > 1;
        let top = self.top_mut();
        match top.indent {
            None => self.push(indent),
            Some(i) if i < indent => self.push(indent),
            // KTAP v1 KUnit: "KTAP version 1" then "# Subtest: name" at the same indentation.
            Some(i) if i == indent && nested && top.fresh() && top.name.is_none() => {}
            _ => {
                self.pending_name = Some(name.to_owned());
                return;
            }
        }
        self.top_mut().name = Some(name.to_owned());
    }

    fn plan(&mut self, indent: usize, n: usize, skip: Option<String>) {
        self.check_version();
        self.close_deeper_than(indent);
        match self.top().indent {
            None => self.top_mut().indent = Some(indent),
            Some(i) if i < indent => self.push(indent),
            _ => {}
        }
        if self.top().plan.is_some() {
            let path = self.path();
            self.problem_here(format!("{path}: second plan line 1..{n}"));
            return;
        }
        // A plan may also come last (TAP); counting is checked when the level closes.
        let top = self.top_mut();
        top.plan = Some(n);
        top.plan_skip = skip;
    }

    fn result(&mut self, indent: usize, r: &ResultLine) {
        self.check_version();
        if self.top().indent.is_none() {
            self.top_mut().indent = Some(indent);
        }
        // The level this result is a child of: the deepest one not indented deeper than it.
        let owner = (0..self.stack.len())
            .rev()
            .find(|&j| self.stack[j].indent.is_none_or(|i| i <= indent))
            .unwrap_or(0);
        while self.stack.len() > owner + 2 {
            self.close_incomplete();
        }
        let child = if self.stack.len() == owner + 2 {
            // Its result line names it (KTAP v1 has no "# Subtest:" header).
            if !r.description.is_empty() {
                self.top_mut().name = Some(r.description.to_owned());
            }
            let path = self.path();
            self.stack.pop().map(|f| (f, path))
        } else {
            None
        };
        self.record(r, child, false);
    }

    /// Adds a result to the open level. With `child` (a closed subtest and its path), the
    /// children stand for it unless its own result says more than they do.
    /// `cut_short`: `r` stands in for the result line of a subtest whose output stopped.
    fn record(&mut self, r: &ResultLine, child: Option<(Frame, String)>, cut_short: bool) {
        let top = self.top_mut();
        top.count += 1;
        let mut number = top.count;
        if !cut_short && r.number != number {
            // Resynchronise on a gap so that one skipped number is one problem, not one per line.
            top.count = top.count.max(r.number);
            let path = self.path();
            self.problem_here(format!(
                "{path}: test {} where {number} was expected",
                r.number
            ));
            number = r.number;
        }
        let mut outcome = directive_outcome(r.ok, r.directive.unwrap_or(""));
        let Some((mut child, path)) = child else {
            let diagnostics = self.take_pending(r.directive, &outcome);
            let name = name_of(r.description, None, number);
            self.top_mut()
                .results
                .push(result(name, outcome, diagnostics));
            return;
        };
        self.settle_plan(&mut child, &path, cut_short);
        let name = name_of(r.description, child.name.as_deref(), number);
        let child_failed = child.results.iter().any(|c| c.outcome == KtapOutcome::Fail);
        if child_failed && outcome == KtapOutcome::Pass {
            self.problem_here(format!("{path}: reported ok but a subtest failed"));
        }
        if let (Some(reason), true, KtapOutcome::Pass) =
            (child.plan_skip.take(), child.results.is_empty(), &outcome)
        {
            outcome = KtapOutcome::Skip(reason);
        }
        let own = child.results.is_empty() || (outcome == KtapOutcome::Fail && !child_failed);
        let diagnostics = self.take_pending(r.directive, &outcome);
        let top = self.top_mut();
        for mut c in child.results {
            c.name = format!("{name}/{}", c.name);
            top.results.push(c);
        }
        if own {
            top.results.push(result(name, outcome, diagnostics));
        }
    }

    /// Pending lines become the next result's diagnostics, dedented to their common indentation.
    fn take_pending(&mut self, directive: Option<&str>, outcome: &KtapOutcome) -> Vec<String> {
        self.pending_name = None;
        let lines = std::mem::take(&mut self.pending);
        let cut = lines.iter().map(|l| indent_of(l)).min().unwrap_or(0);
        let mut out: Vec<String> = lines.into_iter().map(|l| l[cut..].to_owned()).collect();
        match directive {
            Some(d) if !d.is_empty() && !matches!(outcome, KtapOutcome::Skip(_)) => {
                out.push(format!("# {d}"))
            }
            _ => {}
        }
        out
    }

    /// Compares a closing level's count with its plan; with `fill` (the output stopped early),
    /// each missing planned test becomes a failure, the first one getting the pending lines
    /// (typically the panic that stopped the output).
    fn settle_plan(&mut self, frame: &mut Frame, path: &str, fill: bool) {
        let Some(plan) = frame.plan else { return };
        if frame.count == plan {
            return;
        }
        let (count, short) = (frame.count, frame.count < plan);
        let what = if short { "missing" } else { "too many" };
        let msg = format!("{path}: plan 1..{plan} but {count} results ({what} results)");
        self.problems.push(msg);
        if !fill || !short {
            return;
        }
        for n in frame.count + 1..=plan {
            if self.synthesized == MAX_MISSING {
                break;
            }
            self.synthesized += 1;
            let diagnostics = self.take_pending(None, &KtapOutcome::Fail);
            frame
                .results
                .push(result(n.to_string(), KtapOutcome::Fail, diagnostics));
        }
        frame.count = plan;
    }

    /// Closes the innermost subtest, which never printed its result line: it counts as failed.
    fn close_incomplete(&mut self) {
        if self.stack.len() < 2 {
            return;
        }
        let path = self.path();
        let frame = self.stack.pop().unwrap_or_default();
        self.problems
            .push(format!("{path}: no result line (cut short?)"));
        self.record(&ResultLine::default(), Some((frame, path)), true);
    }

    fn close_deeper_than(&mut self, indent: usize) {
        while self.stack.len() > 1 && self.top().indent.is_some_and(|i| i > indent) {
            self.close_incomplete();
        }
    }

    fn finish_top(&mut self) {
        let mut top = std::mem::take(&mut self.stack[0]);
        self.settle_plan(&mut top, "top level", true);
        self.out.append(&mut top.results);
        self.synthesized = 0;
    }

    fn finish(&mut self) {
        if !self.seen_version && !self.warned_no_version {
            self.problems.push("no KTAP or TAP version line".to_owned());
        }
        let implied = usize::from(self.implied_top);
        while self.stack.len() > 1 + implied {
            self.close_incomplete();
        }
        if self.stack.len() == 2 && self.stack[0].fresh() && self.top().name.is_none() {
            // Nothing came at the implied top level: the whole document was indented.
            self.stack[0] = self.stack.pop().unwrap_or_default();
        }
        while self.stack.len() > 1 {
            self.close_incomplete();
        }
        self.finish_top();
    }

    fn problem_here(&mut self, msg: String) {
        self.problems.push(format!("line {}: {msg}", self.lineno));
    }

    fn check_version(&mut self) {
        if !self.seen_version && !self.warned_no_version {
            self.warned_no_version = true;
            self.problem_here("test output before any KTAP or TAP version line".to_owned());
        }
    }

    fn push(&mut self, indent: usize) {
        let name = self.pending_name.take();
        self.stack.push(Frame {
            indent: Some(indent),
            name,
            ..Frame::default()
        });
    }

    /// Names of the open subtests, for problems; an unnamed one by the number it will get.
    fn path(&self) -> String {
        let parts: Vec<String> = (1..self.stack.len())
            .map(|i| match &self.stack[i].name {
                Some(n) => n.clone(),
                None => format!("#{}", self.stack[i - 1].count + 1),
            })
            .collect();
        if parts.is_empty() {
            "top level".to_owned()
        } else {
            parts.join("/")
        }
    }

    fn top(&self) -> &Frame {
        self.stack.last().expect("stack is never empty")
    }

    fn top_mut(&mut self) -> &mut Frame {
        self.stack.last_mut().expect("stack is never empty")
    }
}

fn result(name: String, outcome: KtapOutcome, diagnostics: Vec<String>) -> KtapResult {
    KtapResult {
        name,
        outcome,
        diagnostics,
    }
}

fn name_of(description: &str, header: Option<&str>, number: usize) -> String {
    match (description, header) {
        ("", Some(h)) if !h.is_empty() => h.to_owned(),
        ("", _) => number.to_string(),
        (d, _) => d.to_owned(),
    }
}

#[cfg(test)]
mod broken_tests;
#[cfg(test)]
mod tests;
