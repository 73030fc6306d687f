//! `kspec run --bless`: rewrite exact expectations (a plain `stdout:`/`stderr:` string, an
//! `equals`, a `lines` list) in a spec file from what the step printed, touching nothing but
//! the value: comments, order and layout stay. Every rewrite is read back before it is kept.

use yaml_rust2::scanner::TScalarStyle;

use super::locate::{Locator, NodeKind as Kind, ValueNode as Node};

/// What an expectation becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlessValue {
    Text(String),
    Lines(Vec<String>),
}

/// One rewrite: the YAML path of the value ("cases[0].steps[2].stdout.lines") and its new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlessEdit {
    pub path: String,
    pub value: BlessValue,
}

/// Why a file was not rewritten; each names the YAML path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlessError {
    #[error("{0}: no such value to rewrite")]
    NotFound(String),
    #[error("{0}: cannot find its end")]
    NoEnd(String),
    #[error("{0}: the rewritten value does not read back")]
    ReadBack(String),
}

/// Rewrite `text` with `edits`; an edit whose value cannot be found or does not read back is
/// an error naming its path, and nothing is rewritten then.
pub fn apply(text: &str, edits: &[BlessEdit]) -> Result<String, BlessError> {
    let nodes = Locator::new(text);
    let mut spans = Vec::new();
    for e in edits {
        let node = &nodes
            .value(&e.path)
            .ok_or_else(|| BlessError::NotFound(e.path.clone()))?;
        let start = span_start(text, node);
        let end = span_end(text, node).ok_or_else(|| BlessError::NoEnd(e.path.clone()))?;
        spans.push((start, end, render(text, node, &e.value)));
    }
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_owned();
    for (start, end, new) in spans {
        out.replace_range(start..end, &new);
    }
    for e in edits {
        if read_back(&out, &e.path).as_ref() != Some(&e.value) {
            return Err(BlessError::ReadBack(e.path.clone()));
        }
    }
    Ok(out)
}

/// The value at `path` of a YAML document, as text or lines.
fn read_back(text: &str, path: &str) -> Option<BlessValue> {
    let mut v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        v = v.get(key)?.clone();
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            v = v.get(idx.parse::<usize>().ok()?)?.clone();
        }
    }
    match v {
        serde_yaml::Value::String(s) => Some(BlessValue::Text(s)),
        serde_yaml::Value::Sequence(items) => items
            .into_iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(BlessValue::Lines),
        _ => None,
    }
}

fn render(text: &str, node: &Node, value: &BlessValue) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match value {
        BlessValue::Lines(lines) if node.kind == Kind::BlockSeq && !node.in_flow => {
            let indent = " ".repeat(column_of(text, node.start));
            let items: Vec<String> = lines.iter().map(|l| format!("- {}", quoted(l))).collect();
            items.join(&format!("\n{indent}"))
        }
        BlessValue::Lines(lines) => {
            let items: Vec<String> = lines.iter().map(|l| quoted(l)).collect();
            format!("[{}]", items.join(", "))
        }
        BlessValue::Text(t)
            if node.kind == Kind::Scalar(TScalarStyle::Literal) && literal_ok(t) =>
        {
            let indent = " ".repeat(node.key_col + 2);
            let mut s = String::from("|");
            for l in t.lines() {
                s.push('\n');
                if !l.is_empty() {
                    s.push_str(&indent);
                    s.push_str(l);
                }
            }
            s
        }
        BlessValue::Text(t) => quoted(t),
    }
}

/// Text a `|` block (clip chomping) holds exactly: one final newline, printable lines, the
/// first not starting with a space.
fn literal_ok(t: &str) -> bool {
    t.ends_with('\n')
        && !t.ends_with("\n\n")
        && !t.starts_with(' ')
        && !t.starts_with('\n')
        && t.chars().all(|c| c == '\n' || !c.is_control())
        && t.lines().all(|l| l.trim_end() == l)
}

fn column_of(text: &str, at: usize) -> usize {
    text[..at]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
}

/// Where the value's text starts: a block scalar's node starts at its content, the text to
/// replace at its `|` or `>` header.
fn span_start(text: &str, node: &Node) -> usize {
    match node.kind {
        Kind::Scalar(TScalarStyle::Literal | TScalarStyle::Folded) => {
            text[..node.start].rfind(['|', '>']).unwrap_or(node.start)
        }
        _ => node.start,
    }
}

/// The byte offset where the value starting at `node` ends.
fn span_end(text: &str, node: &Node) -> Option<usize> {
    let rest = &text[node.start..];
    let at = |n: usize| Some(node.start + n);
    match node.kind {
        Kind::Scalar(TScalarStyle::DoubleQuoted) => {
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => return at(i + 1),
                    _ => escaped = false,
                }
            }
            None
        }
        Kind::Scalar(TScalarStyle::SingleQuoted) => {
            let b = rest.as_bytes();
            let mut i = 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return at(i + 1);
                }
                i += 1;
            }
            None
        }
        Kind::Scalar(TScalarStyle::Literal | TScalarStyle::Folded) | Kind::BlockSeq => {
            block_end(text, node)
        }
        Kind::FlowSeq => flow_end(rest).and_then(at),
        Kind::Scalar(_) => {
            let line = rest.split('\n').next().unwrap_or("");
            let mut end = line.len();
            if let Some(c) = line.find(" #") {
                end = end.min(c);
            }
            if node.in_flow {
                if let Some(c) = line.find([',', ']', '}']) {
                    end = end.min(c);
                }
            }
            at(line[..end].trim_end().len())
        }
        Kind::Other => None,
    }
}

/// The end of a `[...]` starting `s`, quotes honoured.
fn flow_end(s: &str) -> Option<usize> {
    let (mut depth, mut quote, mut escaped) = (0i32, None, false);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        escaped = false;
    }
    None
}

/// A block scalar's or block sequence's end: the end of its last line that is indented past
/// the key (for a sequence: or a `-` item at its own column); blank lines after it stay.
fn block_end(text: &str, node: &Node) -> Option<usize> {
    let seq_col = column_of(text, node.start);
    let first_end = text[node.start..]
        .find('\n')
        .map_or(text.len(), |i| node.start + i);
    let mut end = first_end;
    let mut pos = first_end;
    while pos < text.len() {
        let line_start = pos + 1;
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i);
        let line = &text[line_start..line_end];
        let indent = line.len() - line.trim_start_matches(' ').len();
        let inside = if line.trim().is_empty() {
            true
        } else if node.kind == Kind::BlockSeq {
            indent > seq_col || (indent == seq_col && line.trim_start().starts_with('-'))
        } else {
            indent > node.key_col
        };
        if !inside {
            break;
        }
        if !line.trim().is_empty() {
            end = line_end;
        }
        pos = line_end;
        if line_end == text.len() {
            break;
        }
    }
    Some(end)
}

#[cfg(test)]
mod tests;
