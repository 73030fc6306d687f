//! Source positions of YAML nodes by path (`cases[1].steps[0].stdout`), so that errors found
//! after deserialisation (bad regex, duplicate names) and failing steps point at a line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// What kind of value a node is, as far as rewriting it in place cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeKind {
    Scalar(TScalarStyle),
    FlowSeq,
    BlockSeq,
    Other,
}

/// Where a value node starts and what it is.
#[derive(Debug, Clone, Copy)]
pub struct ValueNode {
    /// Byte offset of its first character.
    pub start: usize,
    pub kind: NodeKind,
    /// Inside a flow collection (`[...]`, `{...}`): a plain scalar ends at `,`, `]` or `}`.
    pub in_flow: bool,
    /// Column (0-based) of the key it is the value of, or of the item it is.
    pub key_col: usize,
}

#[derive(Debug, Default, Clone)]
pub struct Locator {
    positions: HashMap<String, Pos>,
    values: HashMap<String, ValueNode>,
}

impl Locator {
    /// Best effort: a document that does not parse yields an empty locator (serde_yaml reports
    /// the syntax error with its own position).
    pub fn new(text: &str) -> Self {
        let mut rx = Receiver {
            text,
            // Markers count characters; only non-ASCII text needs a table to bytes.
            char_bytes: if text.is_ascii() {
                Vec::new()
            } else {
                text.char_indices().map(|(b, _)| b).collect()
            },
            stack: Vec::new(),
            positions: HashMap::new(),
            values: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rx, false);
        Locator {
            positions: rx.positions,
            values: rx.values,
        }
    }

    /// Position of `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// The value node at exactly `path`.
    pub fn value(&self, path: &str) -> Option<ValueNode> {
        self.values.get(path).copied()
    }
}

enum Frame {
    /// The key whose value comes next, with its column.
    Map {
        key: Option<(String, usize)>,
        flow: bool,
    },
    Seq {
        index: usize,
        flow: bool,
    },
}

struct Receiver<'a> {
    text: &'a str,
    /// Byte offset of each character (empty for ASCII text, where they are equal).
    char_bytes: Vec<usize>,
    stack: Vec<(String, Frame)>,
    positions: HashMap<String, Pos>,
    values: HashMap<String, ValueNode>,
}

impl Receiver<'_> {
    fn byte_offset(&self, m: Marker) -> usize {
        if self.char_bytes.is_empty() {
            m.index().min(self.text.len())
        } else {
            self.char_bytes
                .get(m.index())
                .copied()
                .unwrap_or(self.text.len())
        }
    }

    /// Path of the node that starts now, advancing the parent's state. None for a mapping key.
    fn next_node_path(
        &mut self,
        scalar: Option<&str>,
        mark: Marker,
        kind: NodeKind,
    ) -> Option<String> {
        // yaml-rust2 columns are 0-based in practice; serde_yaml (and editors) count from 1.
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        let start = self.byte_offset(mark);
        let Some((parent, frame)) = self.stack.last_mut() else {
            return Some(String::new());
        };
        let join = |k: &str| {
            if parent.is_empty() {
                k.to_owned()
            } else {
                format!("{parent}.{k}")
            }
        };
        let (path, key_col, in_flow) = match frame {
            Frame::Map { key, flow } => match key.take() {
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    self.positions.entry(join(&k)).or_insert(pos);
                    *key = Some((k, mark.col()));
                    return None;
                }
                Some((k, col)) => (join(&k), col, *flow),
            },
            Frame::Seq { index, flow } => {
                let path = format!("{parent}[{index}]");
                *index += 1;
                self.positions.entry(path.clone()).or_insert(pos);
                (path, mark.col(), *flow)
            }
        };
        self.values.entry(path.clone()).or_insert(ValueNode {
            start,
            kind,
            in_flow,
            key_col,
        });
        Some(path)
    }

    fn starts_with(&self, mark: Marker, c: char) -> bool {
        self.text[self.byte_offset(mark)..].starts_with(c)
    }
}

impl MarkedEventReceiver for Receiver<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref s, style, ..) => {
                let _ = self.next_node_path(Some(s), mark, NodeKind::Scalar(style));
            }
            Event::Alias(_) => {
                let _ = self.next_node_path(None, mark, NodeKind::Other);
            }
            Event::MappingStart(..) => {
                let flow = self.starts_with(mark, '{');
                let path = self
                    .next_node_path(None, mark, NodeKind::Other)
                    .unwrap_or_default();
                self.stack.push((path, Frame::Map { key: None, flow }));
            }
            Event::SequenceStart(..) => {
                let flow = self.starts_with(mark, '[');
                let kind = if flow {
                    NodeKind::FlowSeq
                } else {
                    NodeKind::BlockSeq
                };
                let path = self.next_node_path(None, mark, kind).unwrap_or_default();
                self.stack.push((path, Frame::Seq { index: 0, flow }));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_items() {
        let text = "name: x\ncases:\n  - name: a\n    steps:\n      - run: true\n      - run: false\n        exit: 1\n";
        let l = Locator::new(text);
        assert_eq!(l.find("cases[0].steps[1]").line, 6);
        assert_eq!(l.find("cases[0].steps[1].exit").line, 7);
        assert_eq!(l.find("cases[0].steps[1].exit.nothing").line, 7);
        assert_eq!(l.find("cases").line, 2);
    }
}
