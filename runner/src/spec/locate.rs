//! Source positions of YAML nodes by path (`cases[1].steps[0].stdout`), so that errors found
//! after deserialisation (bad regex, duplicate names) and failing steps point at a line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Default, Clone)]
pub struct Locator {
    positions: HashMap<String, Pos>,
}

impl Locator {
    /// Best effort: a document that does not parse yields an empty locator (serde_yaml reports
    /// the syntax error with its own position).
    pub fn new(text: &str) -> Self {
        let mut rx = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rx, false);
        Locator {
            positions: rx.positions,
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
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<(String, Frame)>,
    positions: HashMap<String, Pos>,
}

impl Receiver {
    /// Path of the node that starts now, advancing the parent's state. None for a mapping key.
    fn next_node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        // yaml-rust2 columns are 0-based in practice; serde_yaml (and editors) count from 1.
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        let Some((parent, frame)) = self.stack.last_mut() else {
            return Some(String::new());
        };
        match frame {
            Frame::Map { key } => match key.take() {
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    let path = if parent.is_empty() {
                        k.clone()
                    } else {
                        format!("{parent}.{k}")
                    };
                    self.positions.entry(path).or_insert(pos);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(if parent.is_empty() {
                    k
                } else {
                    format!("{parent}.{k}")
                }),
            },
            Frame::Seq { index } => {
                let path = format!("{parent}[{index}]");
                *index += 1;
                self.positions.entry(path.clone()).or_insert(pos);
                Some(path)
            }
        }
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(ref s, ..) => {
                let _ = self.next_node_path(Some(s), mark);
            }
            Event::Alias(_) => {
                let _ = self.next_node_path(None, mark);
            }
            Event::MappingStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.stack.push((path, Frame::Map { key: None }));
            }
            Event::SequenceStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.stack.push((path, Frame::Seq { index: 0 }));
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
