use super::*;

fn text(path: &str, t: &str) -> BlessEdit {
    BlessEdit {
        path: path.into(),
        value: BlessValue::Text(t.into()),
    }
}

fn lines(path: &str, l: &[&str]) -> BlessEdit {
    BlessEdit {
        path: path.into(),
        value: BlessValue::Lines(l.iter().map(|s| s.to_string()).collect()),
    }
}

const SPEC: &str = r#"# a comment that stays
cases:
  - name: a   # and this one
    steps:
      - run: echo hi
        stdout: "old\n"   # trailing comment
        exit: 0
      - run: printf 'a\nb\n'
        stdout: { lines: ["x", 'y'], contains: a }
      - run: printf 'a\nb\n'
        stdout:
          lines:
            - x
            - "y"
          absent: z
      - run: printf 'one\ntwo\n'
        stdout: |
          old
          text

      - run: echo plain
        stderr: plain old
        stdout: { equals: 'it''s old' }
"#;

#[test]
fn each_kind_of_value_is_rewritten_and_nothing_else() {
    let out = apply(
        SPEC,
        &[
            text("cases[0].steps[0].stdout", "hi\n"),
            lines("cases[0].steps[1].stdout.lines", &["a", "b"]),
            lines("cases[0].steps[2].stdout.lines", &["a", "b \"q\""]),
            text("cases[0].steps[3].stdout", "one\ntwo\n"),
            text("cases[0].steps[4].stderr", "new: text"),
            text("cases[0].steps[4].stdout.equals", "plain\n"),
        ],
    )
    .unwrap();
    let want = r#"# a comment that stays
cases:
  - name: a   # and this one
    steps:
      - run: echo hi
        stdout: "hi\n"   # trailing comment
        exit: 0
      - run: printf 'a\nb\n'
        stdout: { lines: ["a", "b"], contains: a }
      - run: printf 'a\nb\n'
        stdout:
          lines:
            - "a"
            - "b \"q\""
          absent: z
      - run: printf 'one\ntwo\n'
        stdout: |
          one
          two

      - run: echo plain
        stderr: "new: text"
        stdout: { equals: "plain\n" }
"#;
    assert_eq!(out, want);
    // A rerun of the blessing changes nothing.
    let again = apply(&out, &[text("cases[0].steps[0].stdout", "hi\n")]).unwrap();
    assert_eq!(again, out);
}

#[test]
fn a_block_that_cannot_hold_the_text_becomes_a_quoted_string() {
    let out = apply(
        SPEC,
        &[text("cases[0].steps[3].stdout", "no newline at the end")],
    )
    .unwrap();
    assert!(
        out.contains("        stdout: \"no newline at the end\"\n\n      - run: echo plain"),
        "{out}"
    );
    let out = apply(SPEC, &[text("cases[0].steps[3].stdout", "  indented\n")]).unwrap();
    assert!(out.contains("stdout: \"  indented\\n\""), "{out}");
}

#[test]
fn unknown_paths_are_errors_and_the_text_is_left_alone() {
    let e = apply(SPEC, &[text("cases[0].steps[9].stdout", "x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cases[0].steps[9].stdout: no such value to rewrite"
    );
}

#[test]
fn control_characters_and_unicode_survive() {
    let spec = "cases:\n  - name: a\n    steps:\n      - run: x\n        stdout: \"\"\n";
    let t = "tab\there\u{1}é\n";
    let out = apply(spec, &[text("cases[0].steps[0].stdout", t)]).unwrap();
    assert_eq!(
        read_back(&out, "cases[0].steps[0].stdout"),
        Some(BlessValue::Text(t.into()))
    );
}
