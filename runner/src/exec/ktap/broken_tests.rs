//! Parser tests on output that is not whole or not clean: plans not met, bail outs, panics
//! mid-suite, log prefixes, CRLF, concatenated documents, garbage and every truncation.

use super::tests::{clean, diags, outcomes, skip, PASSING};
use super::*;
use KtapOutcome::{ExpectedFail, Fail, Pass};

#[test]
fn plan_mismatch_is_a_problem() {
    let r = parse("KTAP version 1\n1..4\nok 1 a\nok 2 b\nok 3 c\n");
    assert_eq!(
        r.problems,
        ["top level: plan 1..4 but 3 results (missing results)"]
    );
    // The output stopped early: the test that never reported counts as failed.
    assert_eq!(outcomes(&r)[3], ("4", &Fail));

    let r = parse("KTAP version 1\n1..1\n  KTAP version 1\n  1..3\n  ok 1 a\n  ok 2 b\nok 1 s\n");
    assert_eq!(r.problems, ["s: plan 1..3 but 2 results (missing results)"]);
    assert_eq!(outcomes(&r), [("s/a", &Pass), ("s/b", &Pass)]);

    // TAP allows the plan last.
    assert_eq!(
        clean("TAP version 13\nok 1 a\nok 2 b\n1..2\n")
            .results
            .len(),
        2
    );

    let r = parse("TAP version 13\n1..1\nok 1 a\nok 2 b\n");
    assert_eq!(
        r.problems,
        ["top level: plan 1..1 but 2 results (too many results)"]
    );
}

#[test]
fn bail_out_fails_the_remaining_planned_tests() {
    let r = parse(
        "KTAP version 1
1..2
    KTAP version 1
    # Subtest: suite
    1..3
    ok 1 first
Bail out! cannot open /dev/kvm
ok 2 never_seen
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("suite/first", &Pass),
            ("suite/2", &Fail),
            ("suite/3", &Fail),
            ("2", &Fail)
        ]
    );
    assert_eq!(diags(&r, "suite/2"), ["Bail out! cannot open /dev/kvm"]);
    assert_eq!(
        r.problems,
        [
            "line 7: Bail out! cannot open /dev/kvm",
            "suite: no result line (cut short?)",
            "suite: plan 1..3 but 1 results (missing results)",
            "top level: plan 1..2 but 1 results (missing results)",
        ]
    );
}

#[test]
fn dmesg_prefixes_are_stripped() {
    // test_data/test_config_printk_time.log and test_multiple_prefixes.log: boot log before the
    // document, panic after it; neither belongs to a test.
    for prefix in [
        "[    0.060000] ",
        "[    0.060000][    T1] ",
        "<6>[   12.000001] ",
    ] {
        let text = "printk: console [mc-1] enabled
TAP version 14
1..2
\t# Subtest: kunit-try-catch-test
\t1..2
\tok 1 - kunit_test_try_catch_successful_try_no_catch
\tok 2 - kunit_test_try_catch_unsuccessful_try_does_catch
ok 1 - kunit-try-catch-test
\t# Subtest: string-stream-test
\t1..1
\tok 1 - string_stream_test_empty_on_creation
ok 2 - string-stream-test
List of all partitions:

Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)";
        let prefixed: String = text.lines().map(|l| format!("{prefix}{l}\n")).collect();
        let r = clean(&prefixed);
        assert_eq!(r.results.len(), 3, "{prefix}");
        assert!(r
            .results
            .iter()
            .all(|x| x.outcome == Pass && x.diagnostics.is_empty()));
        assert_eq!(
            r.results[2].name,
            "string-stream-test/string_stream_test_empty_on_creation"
        );
    }
}

#[test]
fn panic_mid_suite_fails_the_rest_with_the_panic_attached() {
    // test_data/test_kernel_panic_interrupt.log, shortened.
    let r = parse(
        "[    0.060000] TAP version 14
[    0.060000] \t# Subtest: kunit-try-catch-test
[    0.060000] \t1..1
[    0.060000] \tok 1 - kunit_test_try_catch_successful_try_no_catch
[    0.060000] ok 1 - kunit-try-catch-test
[    0.060000] \t# Subtest: string-stream-test
[    0.060000] \t1..3
[    0.060000] \tok 1 - string_stream_test_empty_on_creation
[    0.060000] \tKernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)
[    0.060000] CPU: 0 PID: 1 Comm: swapper Not tainted 5.4.0-rc1-gea2dd7c0875e-dirty #2
[    0.060000] Stack:
[    0.060000]  602086f8 601bc260 705c0000 705c0000",
    );
    assert_eq!(
        outcomes(&r)[1..],
        [
            (
                "string-stream-test/string_stream_test_empty_on_creation",
                &Pass
            ),
            ("string-stream-test/2", &Fail),
            ("string-stream-test/3", &Fail),
        ]
    );
    let d = diags(&r, "string-stream-test/2");
    assert!(d[0].contains("Kernel panic - not syncing"), "{d:?}");
    assert_eq!(d.len(), 4);
    assert_eq!(
        r.problems,
        [
            "string-stream-test: no result line (cut short?)",
            "string-stream-test: plan 1..3 but 1 results (missing results)",
        ]
    );
}

#[test]
fn unfinished_subtest_without_plan_fails_under_its_name() {
    let r = parse("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: s\n  ok 1 a\n  Oops\n");
    assert_eq!(outcomes(&r), [("s/a", &Pass), ("s", &Fail)]);
    assert_eq!(diags(&r, "s"), ["Oops"]);
    assert_eq!(r.problems, ["s: no result line (cut short?)"]);
}

#[test]
fn crlf_is_accepted() {
    let r = clean(&PASSING.replace('\n', "\r\n"));
    assert_eq!(outcomes(&r), outcomes(&parse(PASSING)));
    assert_eq!(
        diags(&r, "list-kunit-test/list_test_list_init"),
        ["# module: list_test"]
    );
}

#[test]
fn spec_and_kunit_tool_nesting_shapes() {
    // ktap.rst's multi-level example.
    let r = clean(
        "KTAP version 1
1..2
  KTAP version 1
  1..2
    KTAP version 1
    1..2
    not ok 1 test_1
    ok 2 test_2
  not ok 1 test_3
  ok 2 test_4 # SKIP
not ok 1 example_test_1
ok 2 example_test_2
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("example_test_1/test_3/test_1", &Fail),
            ("example_test_1/test_3/test_2", &Pass),
            ("example_test_1/test_4", &skip("")),
            ("example_test_2", &Pass),
        ]
    );
    // test_data/test_is_test_passed-failure-nested.log: an over-indented result still counts.
    let r = clean(
        "KTAP version 1\n1..2\nnot ok 1 subtest 1\n    KTAP version 1\n    1..1\n        \
         not ok 1 subsubtest 1\nnot ok 2 subtest 2\n",
    );
    assert_eq!(
        outcomes(&r),
        [("subtest 1", &Fail), ("subtest 2/subsubtest 1", &Fail)]
    );
    // test_data/test_parse_attributes.log: attribute lines are diagnostics.
    let r = clean(
        "KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: suite\n  # module: example\n  \
         1..1\n  # test.speed: slow\n  ok 1 test\nok 1 suite",
    );
    assert_eq!(
        diags(&r, "suite/test"),
        ["# module: example", "# test.speed: slow"]
    );
}

#[test]
fn tap14_draft_subtest_header_at_parent_indent() {
    let r = clean(
        "TAP version 14\n1..2\n# Subtest: foo.tap\n    1..2\n    ok 1\n    ok 2 - this passed\n\
         ok 1 - foo.tap\nok 2 - bar\n",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("foo.tap/1", &Pass),
            ("foo.tap/this passed", &Pass),
            ("bar", &Pass)
        ]
    );
}

#[test]
fn concatenated_documents_each_count_from_one() {
    // KUnit prints a document per module load.
    let one = |s: &str| {
        format!("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: {s}\n    1..1\n    ok 1 t\nok 1 {s}\n")
    };
    let r = clean(&format!(
        "{}[  5.1] loading module\n{}",
        one("first"),
        one("second")
    ));
    assert_eq!(outcomes(&r), [("first/t", &Pass), ("second/t", &Pass)]);
}

#[test]
fn plan_zero_with_skip() {
    let r = clean("KTAP version 1\n1..2\n  KTAP version 1\n  1..0 # SKIP no hardware\nok 1 needs_hw\nok 2 other\n");
    assert_eq!(
        outcomes(&r),
        [("needs_hw", &skip("no hardware")), ("other", &Pass)]
    );
    // A whole kselftest skipped: nothing to report, nothing inconsistent.
    assert_eq!(clean("TAP version 13\n1..0 # SKIP not root\n").results, []);
}

#[test]
fn missing_version_and_unparsable_lines_are_problems() {
    let r = parse("1..2\nok 1 a\nok 2 b\n");
    assert_eq!(r.results.len(), 2);
    assert_eq!(
        r.problems,
        ["line 1: test output before any KTAP or TAP version line"]
    );

    assert_eq!(parse("").problems, ["no KTAP or TAP version line"]);
    assert_eq!(parse("hello\nworld\n").results, []);

    let r = parse("KTAP version 1\n1..2\nok one\nok 2 b\n");
    assert_eq!(outcomes(&r), [("b", &Pass)]);
    assert_eq!(
        r.problems,
        [
            "line 3: unparsable result or plan line: ok one",
            "line 4: top level: test 2 where 1 was expected",
        ]
    );
}

#[test]
fn ok_parent_of_failed_child_is_inconsistent() {
    let r = parse("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  not ok 1 a\nok 1 s\n");
    assert_eq!(outcomes(&r), [("s/a", &Fail)]);
    assert_eq!(r.problems, ["line 6: s: reported ok but a subtest failed"]);
}

#[test]
fn classify_lines() {
    let res = |ok, number, description, directive| {
        Line::Result(ResultLine {
            ok,
            number,
            description,
            directive,
        })
    };
    assert_eq!(classify("ok 1 test#1"), res(true, 1, "test#1", None));
    assert_eq!(classify("ok 1 # SKIP"), res(true, 1, "", Some("SKIP")));
    assert_eq!(
        classify("not ok 12 - bar #"),
        res(false, 12, "bar", Some(""))
    );
    assert_eq!(
        classify("ok 3 -x # a # b"),
        res(true, 3, "-x", Some("a # b"))
    );
    assert_eq!(classify("KTAP version 1"), Line::Version);
    assert_eq!(classify("TAP version 14"), Line::Version);
    assert_eq!(classify("KTAP version x"), Line::Other);
    assert_eq!(classify("# Subtest: foo"), Line::Subtest("foo"));
    assert_eq!(classify("1..3"), Line::Plan(3, None));
    assert_eq!(
        classify("1..0 # Skipped: no root"),
        Line::Plan(0, Some("no root".into()))
    );
    assert_eq!(classify("1..99999999999999999999999"), Line::Bad);
    assert_eq!(classify("Bail out! no"), Line::BailOut);
    for other in ["okay then", "ok.", "1..2.3", "# ok 1 a", "notok 1"] {
        assert_eq!(classify(other), Line::Other, "{other}");
    }
    for bad in ["not ok", "ok 1a", "ok -1", "ok 99999999999999999999999"] {
        assert_eq!(classify(bad), Line::Bad, "{bad}");
    }
    assert_eq!(
        directive_outcome(true, "skip lower case"),
        skip("lower case")
    );
    assert_eq!(directive_outcome(true, "xfail"), ExpectedFail);
    assert_eq!(directive_outcome(true, "TODO"), Pass);
    assert_eq!(directive_outcome(false, "frobnicate"), Fail);
}

#[test]
fn log_prefixes() {
    assert_eq!(strip_log_prefix("[    1.234567] ok 1 a"), "ok 1 a");
    assert_eq!(strip_log_prefix("[    0.060000][    T1] \tok 1"), "\tok 1");
    assert_eq!(strip_log_prefix("[    0.060000][    C0]  x"), " x");
    assert_eq!(strip_log_prefix("<6>[   12.5] x"), "x");
    assert_eq!(strip_log_prefix("[    0.060000]"), "");
    assert_eq!(strip_log_prefix("[not a time] x"), "[not a time] x");
    assert_eq!(strip_log_prefix("<warn> x"), "<warn> x");
}

/// A small deterministic generator: no dependency, same inputs on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_and_truncated_input_never_panics() {
    let mut g = Lcg(7);
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..g.below(600)).map(|_| g.next() as u8).collect();
        let r = parse(&String::from_utf8_lossy(&bytes));
        assert!(r.results.iter().all(|x| !x.name.is_empty()));
    }
    // Structure soup: every kind of line at random indentation.
    let vocab = [
        "KTAP version 1",
        "TAP version 14",
        "# Subtest: s",
        "1..2",
        "1..0 # SKIP",
        "1..999999999",
        "ok 1 a",
        "not ok 2 b # TODO",
        "ok 3 # SKIP r",
        "ok 7",
        "not ok",
        "Bail out!",
        "# diag",
        "x",
        "",
        "[    1.0] ok 1 p",
        "ok 1 \u{3000}é # XFAIL",
        "\u{3000}ok 1 u",
    ];
    let indents = ["", " ", "  ", "    ", "\t", "        ", "\t\t", "  \t"];
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..g.below(40) {
            text.push_str(indents[g.below(indents.len())]);
            text.push_str(vocab[g.below(vocab.len())]);
            text.push_str(["\n", "\r\n"][g.below(2)]);
        }
        let r = parse(&text);
        assert!(r.results.iter().all(|x| !x.name.is_empty()));
        assert!(r.results.len() <= 40 + MAX_MISSING * 40, "{text}");
    }
}

#[test]
fn every_truncation_of_a_document_is_flagged() {
    let lines: Vec<&str> = PASSING.lines().collect();
    // Cut anywhere after the top-level plan and before the final result line.
    for n in 2..lines.len() {
        let r = parse(&lines[..n].join("\n"));
        assert!(!r.problems.is_empty(), "cut after {n} lines: {r:?}");
        assert!(
            r.results.iter().any(|x| x.outcome == Fail),
            "cut after {n} lines"
        );
    }
    // Cuts inside a line, at every char boundary, must not panic either.
    for (i, _) in PASSING.char_indices() {
        parse(&PASSING[..i]);
    }
}

#[test]
fn deep_nesting_and_huge_plans_stay_bounded() {
    let mut text = String::from("KTAP version 1\n1..4000000000\n");
    for d in 1..=300 {
        let pad = " ".repeat(d);
        text.push_str(&format!("{pad}KTAP version 1\n{pad}1..1000000\n"));
    }
    let r = parse(&text);
    assert!(r.results.len() <= MAX_MISSING + 1, "{}", r.results.len());
    assert_eq!(r.results[0].name.matches('/').count(), 300);
}

#[test]
fn document_without_top_level_header() {
    // Older KUnit's debugfs results: the suite's lines, then its result line at column 0.
    let r =
        clean("    KTAP version 1\n    # Subtest: s\n    1..2\n    ok 1 a\n    ok 2 b\nok 1 s\n");
    assert_eq!(outcomes(&r), [("s/a", &Pass), ("s/b", &Pass)]);
    // A document indented as a whole is still a document.
    let r = clean("  TAP version 13\n  1..2\n  ok 1 a\n  ok 2 b\n");
    assert_eq!(outcomes(&r), [("a", &Pass), ("b", &Pass)]);
}
