//! Expectations: exit codes and text rules (equals, contains, regex, absent, lines, count).

use regex::Regex;

use crate::spec::bless::BlessValue;
use crate::spec::{ExitExpect, TextExpect, TextRules};

/// One unmet expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    /// (expected, actual) when a diff helps.
    pub diff: Option<(String, String)>,
    /// An exact expectation `--bless` can rewrite: (the key under the text's, e.g. ".lines";
    /// "" for a plain string, its value.
    pub bless: Option<(&'static str, BlessValue)>,
}

pub fn problem(message: String) -> Problem {
    Problem {
        message,
        diff: None,
        bless: None,
    }
}

pub fn check_exit(exp: Option<ExitExpect>, actual: i32) -> Option<Problem> {
    let exp = exp.unwrap_or(ExitExpect::Code(0));
    (!exp.accepts(actual)).then(|| problem(format!("exit status {actual}, expected {exp}")))
}

/// `what` names the text ("stdout"); a plain string means `equals` unless `plain_contains`.
pub fn check_text(
    what: &str,
    exp: &TextExpect,
    actual: &str,
    plain_contains: bool,
) -> Vec<Problem> {
    let rules;
    let r = match exp {
        TextExpect::Plain(s) if plain_contains => {
            rules = TextRules {
                contains: crate::spec::OneOrMany::One(s.clone()),
                ..Default::default()
            };
            &rules
        }
        TextExpect::Plain(s) => {
            rules = TextRules {
                equals: Some(s.clone()),
                ..Default::default()
            };
            &rules
        }
        TextExpect::Rules(r) => r,
    };
    let mut out = Vec::new();
    if let Some(e) = &r.equals {
        if e != actual {
            let key = if matches!(exp, TextExpect::Plain(_)) {
                ""
            } else {
                ".equals"
            };
            out.push(Problem {
                message: format!("{what} differs"),
                diff: Some((e.clone(), actual.to_owned())),
                bless: Some((key, BlessValue::Text(actual.to_owned()))),
            });
        }
    }
    for c in r.contains.items() {
        if !actual.contains(c.as_str()) {
            out.push(Problem {
                message: format!("{what} does not contain {c:?}"),
                diff: None,
                bless: None,
            });
        }
    }
    for re in r.regex.items() {
        match Regex::new(re) {
            Ok(rx) if rx.is_match(actual) => {}
            Ok(_) => out.push(problem(format!("{what} does not match regex {re:?}"))),
            Err(e) => out.push(problem(format!("invalid regex {re:?}: {e}"))),
        }
    }
    for a in r.absent.items() {
        if let Some(line) = actual.lines().find(|l| l.contains(a.as_str())) {
            out.push(problem(format!(
                "{what} contains {a:?}, which must be absent: {line:?}"
            )));
        }
    }
    if let Some(lines) = &r.lines {
        let got: Vec<&str> = actual.lines().collect();
        if got != lines.iter().map(String::as_str).collect::<Vec<_>>() {
            let mut exp = lines.join("\n");
            exp.push('\n');
            let got = got.into_iter().map(str::to_owned).collect();
            out.push(Problem {
                message: format!("{what} lines differ"),
                diff: Some((exp, actual.to_owned())),
                bless: Some((".lines", BlessValue::Lines(got))),
            });
        }
    }
    if let Some(c) = &r.count {
        match Regex::new(&c.regex) {
            Ok(rx) => {
                let n = actual.lines().filter(|l| rx.is_match(l)).count();
                if n != c.count {
                    out.push(problem(format!(
                        "{what}: {n} lines match {:?}, expected {}",
                        c.regex, c.count
                    )));
                }
            }
            Err(e) => out.push(problem(format!("invalid regex {:?}: {e}", c.regex))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LineCount, OneOrMany};

    #[test]
    fn plain_equals_and_contains() {
        let e = TextExpect::Plain("hi\n".into());
        assert!(check_text("stdout", &e, "hi\n", false).is_empty());
        let p = check_text("stdout", &e, "ho\n", false);
        assert_eq!(p[0].diff, Some(("hi\n".into(), "ho\n".into())));
        assert!(check_text("kmsg", &TextExpect::Plain("x".into()), "a x b", true).is_empty());
    }

    #[test]
    fn rules_each_fail_on_their_own() {
        let r = TextRules {
            contains: OneOrMany::Many(vec!["a".into(), "zz".into()]),
            regex: OneOrMany::One("^b$".into()),
            absent: OneOrMany::One("c".into()),
            count: Some(LineCount {
                regex: "^a".into(),
                count: 2,
            }),
            ..Default::default()
        };
        let p = check_text("out", &TextExpect::Rules(r), "a\nc\n", false);
        let msgs: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].contains("\"zz\""));
    }

    #[test]
    fn exit_codes() {
        assert!(check_exit(None, 0).is_none());
        assert!(check_exit(None, 1).is_some());
        assert!(check_exit(Some(ExitExpect::Word(crate::spec::ExitWord::NonZero)), 1).is_none());
    }
}
