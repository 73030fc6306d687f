//! Parser tests on the shapes real kernels print: KUnit (KTAP v1 and the older TAP 14 output;
//! several inputs are excerpts of tools/testing/kunit/test_data/*.log), kselftest, and the KTAP
//! spec's own examples.

use super::*;
use KtapOutcome::{ExpectedFail, Fail, Pass, Skip};

pub(super) fn skip(reason: &str) -> KtapOutcome {
    Skip(reason.to_owned())
}

/// (name, outcome) of every result, in order.
pub(super) fn outcomes(r: &KtapReport) -> Vec<(&str, &KtapOutcome)> {
    r.results
        .iter()
        .map(|x| (x.name.as_str(), &x.outcome))
        .collect()
}

pub(super) fn diags<'a>(r: &'a KtapReport, name: &str) -> &'a [String] {
    let found = r.results.iter().find(|x| x.name == name);
    &found
        .unwrap_or_else(|| panic!("no result {name}"))
        .diagnostics
}

pub(super) fn clean(text: &str) -> KtapReport {
    let r = parse(text);
    assert!(r.problems.is_empty(), "problems: {:?}", r.problems);
    r
}

pub(super) const PASSING: &str = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: list-kunit-test
    # module: list_test
    1..3
    ok 1 list_test_list_init
    ok 2 list_test_list_add
    ok 3 list_test_list_add_tail
# list-kunit-test: pass:3 fail:0 skip:0 total:3
# Totals: pass:3 fail:0 skip:0 total:3
ok 1 list-kunit-test
";

#[test]
fn passing_kunit_suite_is_its_cases() {
    let r = clean(PASSING);
    assert_eq!(
        outcomes(&r),
        [
            ("list-kunit-test/list_test_list_init", &Pass),
            ("list-kunit-test/list_test_list_add", &Pass),
            ("list-kunit-test/list_test_list_add_tail", &Pass),
        ]
    );
    assert_eq!(
        diags(&r, "list-kunit-test/list_test_list_init"),
        ["# module: list_test"]
    );
}

#[test]
fn failing_case_keeps_its_diagnostics_dedented() {
    let r = clean(
        "KTAP version 1
1..1
    KTAP version 1
    # Subtest: list-kunit-test
    1..2
    # list_test_list_init: EXPECTATION FAILED at lib/list-test.c:42
    Expected list_empty(&list) == false, but
        list_empty(&list) == 1 (0x1)
    not ok 1 list_test_list_init
    ok 2 list_test_list_add
# list-kunit-test: pass:1 fail:1 skip:0 total:2
not ok 1 list-kunit-test
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("list-kunit-test/list_test_list_init", &Fail),
            ("list-kunit-test/list_test_list_add", &Pass),
        ]
    );
    assert_eq!(
        diags(&r, "list-kunit-test/list_test_list_init"),
        [
            "# list_test_list_init: EXPECTATION FAILED at lib/list-test.c:42",
            "Expected list_empty(&list) == false, but",
            "    list_empty(&list) == 1 (0x1)",
        ]
    );
    assert!(diags(&r, "list-kunit-test/list_test_list_add").is_empty());
}

#[test]
fn skipped_cases_carry_the_reason() {
    // test_data/test_skip_tests.log and test_skip_all_tests.log (TAP 14, "- " separators).
    let r = clean(
        "TAP version 14
1..2
    # Subtest: string-stream-test
    1..1
    ok 1 - string_stream_test_empty_on_creation # SKIP all tests skipped
ok 1 - string-stream-test # SKIP
    # Subtest: example
    1..2
    # example_simple_test: initializing
    ok 1 - example_simple_test
    # example_skip_test: initializing
    ok 2 - example_skip_test # SKIP this test should be skipped
ok 2 - example
",
    );
    assert_eq!(
        outcomes(&r),
        [
            (
                "string-stream-test/string_stream_test_empty_on_creation",
                &skip("all tests skipped")
            ),
            ("example/example_simple_test", &Pass),
            (
                "example/example_skip_test",
                &skip("this test should be skipped")
            ),
        ]
    );
    // A SKIP reason is the outcome, not repeated as a diagnostic.
    assert_eq!(
        diags(&r, "example/example_skip_test"),
        ["# example_skip_test: initializing"]
    );
}

#[test]
fn parameterised_case_nests_its_params() {
    // KUnit >= 6.6: params are a nested block without a plan; their log lines are printed at
    // the case's indentation, before each param's result line.
    let r = clean(
        "KTAP version 1
1..1
    KTAP version 1
    # Subtest: kunit-example-test
    # module: kunit_example_test
    1..2
    # example_simple_test: initializing
    ok 1 example_simple_test
        KTAP version 1
        # Subtest: example_params_test
    # example_params_test: initializing
        ok 1 example value 3 # SKIP unsupported param value 3
    # example_params_test: initializing
    # example_params_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:151
    Expected param->value != 0, but
        param->value == 0 (0x0)
        not ok 2 example value 0
    # example_params_test: pass:0 fail:1 skip:1 total:2
    not ok 2 example_params_test
# kunit-example-test: pass:1 fail:1 skip:0 total:2
# Totals: pass:1 fail:1 skip:1 total:3
not ok 1 kunit-example-test
",
    );
    let p = "kunit-example-test/example_params_test";
    assert_eq!(
        outcomes(&r),
        [
            ("kunit-example-test/example_simple_test", &Pass),
            (
                &format!("{p}/example value 3"),
                &skip("unsupported param value 3")
            ),
            (&format!("{p}/example value 0"), &Fail),
        ]
    );
    assert_eq!(
        diags(&r, &format!("{p}/example value 0")),
        [
            "# example_params_test: initializing",
            "# example_params_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:151",
            "Expected param->value != 0, but",
            "    param->value == 0 (0x0)",
        ]
    );
}

#[test]
fn old_kunit_params_use_only_a_subtest_header() {
    let r = clean(
        "TAP version 14
1..1
    # Subtest: kunit-example-test
    1..2
    ok 1 - example_simple_test
        # Subtest: example_params_test
        ok 1 - example value 2
        ok 2 - example value 1
    ok 2 - example_params_test
ok 1 - kunit-example-test
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("kunit-example-test/example_simple_test", &Pass),
            (
                "kunit-example-test/example_params_test/example value 2",
                &Pass
            ),
            (
                "kunit-example-test/example_params_test/example value 1",
                &Pass
            ),
        ]
    );
}

#[test]
fn old_kunit_tabs_without_top_plan() {
    // test_data/test_is_test_passed-all_passed_nested.log: tab indentation, a suite nested in a
    // suite, kernel lines ("init_suite", "kunit ...: all tests passed") among the results.
    let r = clean(
        "TAP version 14
1..2
\t# Subtest: sysctl_test
\t1..3
\tok 1 - sysctl_test_dointvec_null_tbl_data
\t\t# Subtest: example
\t\t1..1
\tinit_suite
\t\t# example_simple_test: initializing
\t\tok 1 - example_simple_test
\tkunit example: all tests passed
\tok 2 - example
\tok 3 - sysctl_test_dointvec_table_len_is_zero
kunit sysctl_test: all tests passed
ok 1 - sysctl_test
\t# Subtest: example
\t1..1
init_suite
\t# example_simple_test: initializing
\tok 1 - example_simple_test
kunit example: all tests passed
ok 2 - example
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("sysctl_test/sysctl_test_dointvec_null_tbl_data", &Pass),
            ("sysctl_test/example/example_simple_test", &Pass),
            ("sysctl_test/sysctl_test_dointvec_table_len_is_zero", &Pass),
            ("example/example_simple_test", &Pass),
        ]
    );
    assert_eq!(
        diags(&r, "example/example_simple_test"),
        ["init_suite", "\t# example_simple_test: initializing"]
    );
}

#[test]
fn ktap_spec_example_names_parents_from_their_result_lines() {
    // Documentation/dev-tools/ktap.rst, "Example KTAP output": 2-space indentation and no
    // "# Subtest:" headers, so a subtest's name is known only when it ends.
    let r = clean(
        "KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("main_test/example_test_1/test_1", &Pass),
            ("main_test/example_test_2/test_1", &skip("test_1 skipped")),
            ("main_test/example_test_2/test_2", &Pass),
            ("main_test/example_test_3/test_1", &Pass),
            ("main_test/example_test_3/test_2", &Fail),
            ("main_test/example_test_3/test_3", &skip("test_3 skipped")),
        ]
    );
    assert_eq!(
        diags(&r, "main_test/example_test_3/test_2"),
        ["# test_2: FAIL"]
    );
    assert_eq!(
        diags(&r, "main_test/example_test_1/test_1"),
        ["# test_1: initializing test_1"]
    );
}

#[test]
fn failing_parent_with_passing_children_is_reported() {
    let r = clean(
        "KTAP version 1
1..1
    KTAP version 1
    # Subtest: leaky
    1..2
    ok 1 a
    ok 2 b
    # leaky: suite_exit leaked 1 object
not ok 1 leaky
",
    );
    assert_eq!(
        outcomes(&r),
        [("leaky/a", &Pass), ("leaky/b", &Pass), ("leaky", &Fail)]
    );
    assert_eq!(diags(&r, "leaky"), ["# leaky: suite_exit leaked 1 object"]);
}

#[test]
fn suite_init_failure_is_a_leaf() {
    // kunit_run_tests(): suite_init failing skips the suite header and every case.
    let r = clean("KTAP version 1\n1..1\n    # failed to initialize (-12)\nnot ok 1 kunit-init\n");
    assert_eq!(outcomes(&r), [("kunit-init", &Fail)]);
    assert_eq!(diags(&r, "kunit-init"), ["# failed to initialize (-12)"]);
}

#[test]
fn kselftest_flat_with_directives() {
    let r = clean(
        "TAP version 13
1..6
# Starting 6 tests from 1 test cases.
#  RUN           global.basic ...
#            OK  global.basic
ok 1 global.basic
ok 2 # XFAIL arch does not support feature
not ok 3 global.known_bug # TODO fix the locking
ok 4 global.needs_config # SKIP CONFIG_FOO is not set
not ok 5 global.timeout # TIMEOUT 30 seconds
ok 6 global.rc # rcode=0
# Totals: pass:2 fail:1 xfail:1 xpass:0 skip:1 error:0
",
    );
    assert_eq!(
        outcomes(&r),
        [
            ("global.basic", &Pass),
            ("2", &ExpectedFail),
            ("global.known_bug", &ExpectedFail),
            ("global.needs_config", &skip("CONFIG_FOO is not set")),
            ("global.timeout", &Fail),
            ("global.rc", &Pass),
        ]
    );
    assert_eq!(diags(&r, "global.basic").len(), 3);
    assert_eq!(diags(&r, "2"), ["# XFAIL arch does not support feature"]);
    assert_eq!(diags(&r, "global.timeout"), ["# TIMEOUT 30 seconds"]);
}

#[test]
fn kselftest_runner_nests_output_as_diagnostics() {
    // test_data/test_is_test_passed-kselftest.log: run_kselftest.sh prefixes each test's own
    // TAP with "# ", which is not structure.
    let r = clean(
        "TAP version 13
1..2
# selftests: membarrier: membarrier_test_single_thread
# TAP version 13
# 1..2
# ok 1 sys_membarrier available
ok 1 selftests: membarrier: membarrier_test_single_thread
# selftests: membarrier: membarrier_test_multi_thread
ok 2 selftests: membarrier: membarrier_test_multi_thread
",
    );
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.results[0].diagnostics[1], "# TAP version 13");
}
