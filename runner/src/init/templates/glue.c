// SPDX-License-Identifier: GPL-2.0
/*
 * @name@ C glue: what the kernel's Rust crate lacks for a /proc file (struct proc_ops,
 * proc_create_data(), pde_data()) and one-line wrappers of static inline helpers. Every
 * decision is taken in Rust (@name@_main.rs), which declares these functions too.
 */
#include <linux/fs.h>
#include <linux/proc_fs.h>
#include <linux/uaccess.h>

/* Implemented in Rust. */
ssize_t @name@_read(void *state, char __user *buf, size_t count, loff_t *ppos);
ssize_t @name@_write(void *state, const char __user *buf, size_t count, loff_t *ppos);

/* Called by Rust. */
bool @name@_glue_proc_create(void *state);
void @name@_glue_proc_remove(void);
size_t @name@_glue_copy_to_user(void __user *to, const void *from, size_t n);
size_t @name@_glue_copy_from_user(void *to, const void __user *from, size_t n);

static struct proc_dir_entry *@name@_entry;

static ssize_t glue_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	return @name@_read(pde_data(file_inode(file)), buf, count, ppos);
}

static ssize_t glue_write(struct file *file, const char __user *buf, size_t count,
			  loff_t *ppos)
{
	return @name@_write(pde_data(file_inode(file)), buf, count, ppos);
}

static const struct proc_ops @name@_ops = {
	.proc_read = glue_read,
	.proc_write = glue_write,
	.proc_lseek = default_llseek,
};

bool @name@_glue_proc_create(void *state)
{
	@name@_entry = proc_create_data("@name@", 0644, NULL, &@name@_ops, state);
	return @name@_entry != NULL;
}

void @name@_glue_proc_remove(void)
{
	proc_remove(@name@_entry);
}

size_t @name@_glue_copy_to_user(void __user *to, const void *from, size_t n)
{
	return copy_to_user(to, from, n);
}

size_t @name@_glue_copy_from_user(void *to, const void __user *from, size_t n)
{
	return copy_from_user(to, from, n);
}
