// SPDX-License-Identifier: GPL-2.0
/*
 * kspec_kunit: one KUnit suite, "kspec-kunit", whose cases pass, skip and fail on purpose.
 * Loading it runs the suite; its KTAP is in /sys/kernel/debug/kunit/kspec-kunit/results.
 */
#include <kunit/test.h>
#include <linux/module.h>

static void kspec_passes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 2 + 2, 4);
}

static void kspec_skipped(struct kunit *test)
{
	kunit_skip(test, "nothing to test on this machine");
}

static void kspec_fails(struct kunit *test)
{
	int answer = 41;

	KUNIT_EXPECT_EQ_MSG(test, answer, 42, "kspec wants this case to fail");
}

static struct kunit_case kspec_cases[] = {
	KUNIT_CASE(kspec_passes),
	KUNIT_CASE(kspec_skipped),
	KUNIT_CASE(kspec_fails),
	{}
};

static struct kunit_suite kspec_suite = {
	.name = "kspec-kunit",
	.test_cases = kspec_cases,
};
kunit_test_suite(kspec_suite);

MODULE_DESCRIPTION("kspec's KUnit suite that fails on purpose");
MODULE_LICENSE("GPL");
