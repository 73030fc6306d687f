// SPDX-License-Identifier: GPL-2.0
/*
 * kspec_faults: used only by kspec's own tests. Writing a command to
 * /proc/kspec_faults makes the kernel emit a genuine report (WARN, KASAN,
 * taint, call trace, log flood), so the runner's report detection is tested
 * against what kernels really print rather than against hand-written text.
 *
 * Commands (one per write, at most 63 bytes, a trailing newline is ignored):
 *   warn | warn_later MS | oob | taint | dump | flood N | say TEXT
 * A write returns its length on success, -EINVAL for anything malformed and
 * -EBUSY for warn_later while an earlier one is still pending.
 */
#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#define KSPEC_FLOOD_MAX 20000

/*
 * A WARN from a kworker, not the writer: tests need reports that arrive
 * outside any step's own task, and later than the write that asked for them.
 */
static void kspec_warn_fn(struct work_struct *work)
{
	WARN(1, "kspec_faults: warn from delayed work\n");
}
static DECLARE_DELAYED_WORK(kspec_warn_work, kspec_warn_fn);

static void kspec_oob(void)
{
	char *p = kmalloc(8, GFP_KERNEL);
	int v;

	if (!p)
		return;
	/*
	 * Hide the pointer and read through volatile so the compiler can neither
	 * diagnose nor drop the bad read: KASAN must see it happen at run time.
	 */
	OPTIMIZER_HIDE_VAR(p);
	v = ((volatile char *)p)[8];
	pr_info("kspec_faults: oob read %d\n", v);
	kfree(p);
}

/*
 * N lines as fast as the kernel can log them, with preemption off: two floods at once keep
 * both CPUs from running any reader of the log until they are done, so records are lost by
 * construction, not by the host's load. Bounded, so it never lasts long enough to look like a
 * lockup or an RCU stall.
 */
static int kspec_flood(u32 n)
{
	u32 i;

	if (n > KSPEC_FLOOD_MAX)
		return -EINVAL;
	preempt_disable();
	for (i = 0; i < n; i++)
		pr_info("kspec_faults: flood %u\n", i);
	preempt_enable();
	return 0;
}

static int kspec_run(const char *cmd, const char *arg)
{
	u32 n;

	if (!strcmp(cmd, "say")) {
		if (!*arg)
			return -EINVAL;
		pr_info("kspec_faults: %s\n", arg);
		return 0;
	}
	if (!strcmp(cmd, "flood"))
		return kstrtou32(arg, 10, &n) ? -EINVAL : kspec_flood(n);
	if (!strcmp(cmd, "warn_later")) {
		if (kstrtou32(arg, 10, &n))
			return -EINVAL;
		/* One WARN per request: refuse, not merge with a pending one. */
		if (!schedule_delayed_work(&kspec_warn_work, msecs_to_jiffies(n)))
			return -EBUSY;
		return 0;
	}
	/* The rest take no argument: a stray one is likely a typo. */
	if (*arg)
		return -EINVAL;
	if (!strcmp(cmd, "warn")) {
		WARN(1, "kspec_faults: warn now\n");
	} else if (!strcmp(cmd, "oob")) {
		kspec_oob();
	} else if (!strcmp(cmd, "taint")) {
		add_taint(TAINT_USER, LOCKDEP_STILL_OK);
		pr_info("kspec_faults: tainted U\n");
	} else if (!strcmp(cmd, "dump")) {
		dump_stack();
	} else {
		return -EINVAL;
	}
	return 0;
}

static ssize_t kspec_write(struct file *file, const char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	char buf[64];
	char *line, *cmd;
	int ret;

	if (count == 0 || count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';

	/* `echo cmd >` appends a newline; shells may add spaces. */
	line = strim(buf);
	cmd = strsep(&line, " ");
	ret = kspec_run(cmd, line ? skip_spaces(line) : "");
	return ret ? ret : count;
}

static const struct proc_ops kspec_proc_ops = {
	.proc_write = kspec_write,
};

static int __init kspec_faults_init(void)
{
	if (!proc_create("kspec_faults", 0200, NULL, &kspec_proc_ops))
		return -ENOMEM;
	pr_info("kspec_faults: loaded\n");
	return 0;
}

static void __exit kspec_faults_exit(void)
{
	/* Remove the file first: no writer may re-arm the work once cancelled. */
	remove_proc_entry("kspec_faults", NULL);
	cancel_delayed_work_sync(&kspec_warn_work);
}

module_init(kspec_faults_init);
module_exit(kspec_faults_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kspec test-only module: real kernel reports on demand");
