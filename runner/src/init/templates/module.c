// SPDX-License-Identifier: GPL-2.0
/*
 * @name@: a minimal kernel module in C with one file, /proc/@name@ (mode 0644).
 *
 * Reading it returns its content: a greeting until someone writes. A write (root only, by the
 * mode) replaces the content with at most CAPACITY bytes; a longer one, or one at a nonzero
 * offset, fails with EINVAL and changes nothing.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/string.h>
#include <linux/uaccess.h>

/* The most a write may store. */
#define CAPACITY 128

/* What /proc/@name@ holds after loading. */
static const char greeting[] = "Hello from @name@!\n";

/* The file's content: len valid bytes, under content_lock (process context only). */
static DEFINE_MUTEX(content_lock);
static char content[CAPACITY];
static size_t content_len;

static struct proc_dir_entry *entry;

static ssize_t @name@_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	char snapshot[CAPACITY];
	size_t len;

	/* A snapshot: copy_to_user() may fault and sleep, so no lock is held across it. */
	mutex_lock(&content_lock);
	len = content_len;
	memcpy(snapshot, content, len);
	mutex_unlock(&content_lock);
	/* Honours and advances *ppos; a negative offset is EINVAL, past the end is EOF. */
	return simple_read_from_buffer(buf, count, ppos, snapshot, len);
}

/*
 * Every byte from user space is untrusted: the length is checked before anything is copied,
 * and the copy goes into a local buffer first, so a fault leaves the old content unchanged.
 */
static ssize_t @name@_write(struct file *file, const char __user *buf, size_t count,
			    loff_t *ppos)
{
	char incoming[CAPACITY];

	if (*ppos != 0 || count > CAPACITY)
		return -EINVAL;
	if (copy_from_user(incoming, buf, count))
		return -EFAULT;
	mutex_lock(&content_lock);
	memcpy(content, incoming, count);
	content_len = count;
	mutex_unlock(&content_lock);
	*ppos = count;
	pr_info("stored %zu bytes\n", count);
	return count;
}

static const struct proc_ops @name@_ops = {
	.proc_read = @name@_read,
	.proc_write = @name@_write,
	.proc_lseek = default_llseek,
};

static int __init @name@_init(void)
{
	BUILD_BUG_ON(sizeof(greeting) - 1 > CAPACITY);
	memcpy(content, greeting, sizeof(greeting) - 1);
	content_len = sizeof(greeting) - 1;
	entry = proc_create("@name@", 0644, NULL, &@name@_ops);
	if (!entry)
		return -ENOMEM;
	pr_info("loaded: /proc/@name@\n");
	return 0;
}

static void __exit @name@_exit(void)
{
	/* Waits for running handlers: none runs after this. */
	proc_remove(entry);
	pr_info("unloaded (%zu bytes stored)\n", content_len);
}

module_init(@name@_init);
module_exit(@name@_exit);

MODULE_DESCRIPTION("A minimal module with one /proc file");
MODULE_LICENSE("GPL");
