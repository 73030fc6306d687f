// SPDX-License-Identifier: GPL-2.0
/*
 * kchan C glue: struct layouts, registrations and one-line wrappers of static inline
 * helpers that the kernel's Rust crate does not provide (6.12; still absent on 7.3 for procfs
 * and netfilter). No protocol logic lives here: every callback forwards to Rust (glue.h).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bottom_half.h>
#include <linux/capability.h>
#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/ip.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/proc_fs.h>
#include <linux/ratelimit.h>
#include <linux/spinlock.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/skbuff.h>
#include <linux/sockptr.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "glue.h"

/*
 * Module parameters. The variables are defined in Rust (kchan_main.rs) with their defaults
 * from abi.rs, so the defaults exist once; module_param() only publishes them (and modinfo
 * shows the descriptions). 0444: read-only after load, the channels are set up once.
 */
module_param_named(netlink_unit, kchan_param_netlink_unit, int, 0444);
MODULE_PARM_DESC(netlink_unit, "Netlink protocol unit, 0..31, must be unused (default 31)");
module_param_named(sockopt_base, kchan_param_sockopt_base, int, 0444);
MODULE_PARM_DESC(sockopt_base,
		 "First IPPROTO_IP socket option; kchan owns [base, base+2) (default 128)");
module_param_named(mmap_pages, kchan_param_mmap_pages, uint, 0444);
MODULE_PARM_DESC(mmap_pages, "Pages shared through /proc/kchan/mmap, 1..4096 (default 1)");
module_param_named(log_period_ms, kchan_param_log_period_ms, uint, 0444);
MODULE_PARM_DESC(log_period_ms,
		 "Period of the log budgets in ms, 100..60000 (default 5000): a test waits one out");
module_param_named(burst_stall_ms, kchan_param_burst_stall_ms, uint, 0444);
MODULE_PARM_DESC(burst_stall_ms,
		 "How long a burst message waits for room, 10..60000 ms (default 2000; the end marker 5x)");

/* ---- procfs -------------------------------------------------------------------------------- */

static struct proc_dir_entry *kchan_dir;
static struct proc_dir_entry *memshare_dir;

static const struct proc_ops kchan_buffer_ops = {
	.proc_read = kchan_buffer_read,
	.proc_write = kchan_buffer_write,
	.proc_lseek = default_llseek,
};

/*
 * A mapping's pages are inserted at mmap() time; the fault handler serves them again after
 * user space dropped them (madvise(MADV_DONTNEED)). Its vm_ops point into this module, so
 * every VMA holds a module reference (taken at mmap and open, dropped at close): unloading
 * is refused while a mapping lives, instead of a later fault jumping into freed code.
 */
static void kchan_vma_open(struct vm_area_struct *vma)
{
	/* A split or copy of a VMA that holds a reference: the module cannot be going. */
	__module_get(THIS_MODULE);
}

static void kchan_vma_close(struct vm_area_struct *vma)
{
	module_put(THIS_MODULE);
}

static vm_fault_t kchan_vma_fault(struct vm_fault *vmf)
{
	struct page *page = kchan_mmap_page(vmf->pgoff);

	if (!page)
		return VM_FAULT_SIGBUS;
	get_page(page); /* the fault's reference, handed to the page table */
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct kchan_vm_ops = {
	.open = kchan_vma_open,
	.close = kchan_vma_close,
	.fault = kchan_vma_fault,
};

static int kchan_proc_mmap(struct file *file, struct vm_area_struct *vma)
{
	int ret;

	/*
	 * try_module_get(), not __module_get(): an rmmod that has already decided to unload
	 * waits in proc_remove() for this call to return, and a reference taken now would not
	 * stop it, leaving the VMA's vm_ops pointing into freed module memory (found by the
	 * fuzz spec's load/unload racer on two vCPUs). A module going away refuses the mmap.
	 */
	if (!try_module_get(THIS_MODULE))
		return -ENODEV;
	/*
	 * VM_MAYSHARE, not VM_SHARED, tells MAP_SHARED apart: do_mmap() clears VM_SHARED for a
	 * shared mapping of a read-only descriptor.
	 */
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	ret = kchan_mmap(vma, vma->vm_start, vma->vm_end, vma->vm_pgoff,
			 !!(vma->vm_flags & VM_MAYSHARE));
	if (ret) {
		module_put(THIS_MODULE); /* a failed mmap() never calls close */
		return ret;
	}
	vma->vm_ops = &kchan_vm_ops;
	return 0;
}

static const struct proc_ops kchan_mmap_ops = {
	.proc_read = kchan_mmap_read,
	.proc_lseek = default_llseek,
	.proc_mmap = kchan_proc_mmap,
};

static int kchan_stats_seq(struct seq_file *m, void *v)
{
	return kchan_stats_show(m);
}

static int kchan_size_seq(struct seq_file *m, void *v)
{
	return kchan_memshare_size_show(m);
}

int kchan_glue_proc_register(void)
{
	kchan_dir = proc_mkdir("kchan", NULL);
	if (!kchan_dir)
		goto fail;
	if (!proc_create("buffer", 0644, kchan_dir, &kchan_buffer_ops) ||
	    !proc_create_single("stats", 0444, kchan_dir, kchan_stats_seq) ||
	    !proc_create("mmap", 0600, kchan_dir, &kchan_mmap_ops))
		goto fail;
	memshare_dir = proc_mkdir("memshare", NULL);
	if (!memshare_dir ||
	    !proc_create_single("phymem_size", 0444, memshare_dir, kchan_size_seq))
		goto fail;
	return 0;
fail:
	pr_err("cannot create the /proc entries (already present, or out of memory)\n");
	kchan_glue_proc_unregister();
	return -ENOMEM;
}

void kchan_glue_proc_unregister(void)
{
	/* proc_remove() takes the whole subtree and waits for running handlers. */
	proc_remove(memshare_dir);
	memshare_dir = NULL;
	proc_remove(kchan_dir);
	kchan_dir = NULL;
}

/* ---- sockopt ------------------------------------------------------------------------------- */

static int kchan_nf_set(struct sock *sk, int optval, sockptr_t arg, unsigned int len)
{
	return kchan_sockopt_set(sk, optval, &arg, len);
}

/* .owner pins the module while a handler runs (nf_sockopt_find() takes a reference). */
static struct nf_sockopt_ops kchan_sockopt_ops = {
	.pf = PF_INET,
	.set = kchan_nf_set,
	.get = kchan_sockopt_get,
	.owner = THIS_MODULE,
};

int kchan_glue_sockopt_register(int optmin, int optmax)
{
	kchan_sockopt_ops.set_optmin = optmin;
	kchan_sockopt_ops.set_optmax = optmax;
	kchan_sockopt_ops.get_optmin = optmin;
	kchan_sockopt_ops.get_optmax = optmax;
	return nf_register_sockopt(&kchan_sockopt_ops);
}

void kchan_glue_sockopt_unregister(void)
{
	nf_unregister_sockopt(&kchan_sockopt_ops);
}

/*
 * The sockopt state is one for the whole system, so it answers only in the initial network
 * namespace and setting it takes CAP_NET_ADMIN there: root of a user namespace of its own
 * (unshare -Urn) is not root of the system.
 */
bool kchan_glue_sk_init_net(struct sock *sk)
{
	return net_eq(sock_net(sk), &init_net);
}

bool kchan_glue_net_admin(void)
{
	return capable(CAP_NET_ADMIN);
}

/*
 * Log lines that user space can trigger at will, limited per budget; once a period with
 * suppressed lines ends, ___ratelimit() logs how many ("... callbacks suppressed").
 * Unprivileged netlink echoes get a small budget, root-only paths (sockopt set, proc write,
 * listener registration) a large one that the seed scenarios never reach.
 */
static DEFINE_RATELIMIT_STATE(kchan_echo_log, 5 * HZ, 10);
static DEFINE_RATELIMIT_STATE(kchan_admin_log, 5 * HZ, 100);

/* Called by init before any channel is registered, so no caller races the change. */
void kchan_glue_set_log_period(unsigned int ms)
{
	kchan_echo_log.interval = msecs_to_jiffies(ms);
	kchan_admin_log.interval = msecs_to_jiffies(ms);
}

/*
 * ___ratelimit() says "no" without counting when another CPU holds the state's lock, so two
 * CPUs logging at once would lose lines within the budget (and never report them as
 * suppressed). Callers take turns here first, so only the budget decides.
 */
static DEFINE_RAW_SPINLOCK(kchan_log_lock);

static bool kchan_log_allowed(struct ratelimit_state *rs, const char *what)
{
	unsigned long flags;
	bool ok;

	raw_spin_lock_irqsave(&kchan_log_lock, flags);
	ok = ___ratelimit(rs, what);
	raw_spin_unlock_irqrestore(&kchan_log_lock, flags);
	return ok;
}

bool kchan_glue_log_echo(void)
{
	return kchan_log_allowed(&kchan_echo_log, KBUILD_MODNAME ": netlink echo");
}

bool kchan_glue_log_admin(void)
{
	return kchan_log_allowed(&kchan_admin_log, KBUILD_MODNAME ": root-only messages");
}

int kchan_glue_copy_from_sockptr(void *dst, const sockptr_t *src, size_t len)
{
	return copy_from_sockptr(dst, *src, len) ? -EFAULT : 0;
}

/* ---- netlink ------------------------------------------------------------------------------- */

struct sock *kchan_glue_netlink_create(int unit)
{
	/* The kernel copies what it needs from cfg; THIS_MODULE is pinned by user sockets. */
	struct netlink_kernel_cfg cfg = { .input = kchan_netlink_input };

	return netlink_kernel_create(&init_net, unit, &cfg);
}

void kchan_glue_netlink_release(struct sock *sk)
{
	netlink_kernel_release(sk);
}

static int kchan_netlink_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	const struct netlink_notify *n = ptr;

	if (event == NETLINK_URELEASE && net_eq(n->net, &init_net))
		kchan_netlink_release(n->protocol, n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block kchan_netlink_notifier = {
	.notifier_call = kchan_netlink_event,
};

int kchan_glue_notifier_register(void)
{
	return netlink_register_notifier(&kchan_netlink_notifier);
}

void kchan_glue_notifier_unregister(void)
{
	netlink_unregister_notifier(&kchan_netlink_notifier);
}

const u8 *kchan_glue_skb_data(struct sk_buff *skb, u32 *len)
{
	/* Requests from netlink_sendmsg() are linear; only the linear part is ever parsed. */
	*len = skb_headlen(skb);
	return skb->data;
}

u32 kchan_glue_skb_portid(struct sk_buff *skb)
{
	return NETLINK_CB(skb).portid;
}

bool kchan_glue_skb_net_admin(struct sk_buff *skb)
{
	return netlink_capable(skb, CAP_NET_ADMIN);
}

void kchan_glue_ack(struct sk_buff *in_skb, const struct nlmsghdr *nlh, int err)
{
	netlink_ack(in_skb, (struct nlmsghdr *)nlh, err, NULL);
}

struct sk_buff *kchan_glue_nlmsg_new(u16 type, u32 seq, u32 len, bool atomic, void **payload)
{
	struct sk_buff *skb = nlmsg_new(len, atomic ? GFP_ATOMIC : GFP_KERNEL);
	struct nlmsghdr *nlh;

	if (!skb)
		return NULL;
	/* portid 0 (sent by the kernel), flags 0; nlmsg_put() zeroes only the padding. */
	nlh = nlmsg_put(skb, 0, seq, type, len, 0);
	if (!nlh) {
		kfree_skb(skb);
		return NULL;
	}
	*payload = nlmsg_data(nlh);
	memset(*payload, 0, len); /* never hand out stale heap bytes, whatever Rust writes */
	return skb;
}

int kchan_glue_unicast(struct sock *sk, struct sk_buff *skb, u32 portid)
{
	/* Always non-blocking: a full receiver gives -EAGAIN (the skb is consumed either way). */
	return netlink_unicast(sk, skb, portid, 1);
}

/* ---- ICMP hook ----------------------------------------------------------------------------- */

static unsigned int kchan_nf_hook(void *priv, struct sk_buff *skb,
				  const struct nf_hook_state *state)
{
	/* ip_rcv_core() has pulled and checked the IPv4 header before PRE_ROUTING. */
	const struct iphdr *iph = ip_hdr(skb);

	kchan_ipv4_packet(iph->protocol, iph->saddr, iph->daddr);
	return NF_ACCEPT; /* observe only, never drop */
}

static struct nf_hook_ops kchan_hook_ops = {
	.hook = kchan_nf_hook,
	.pf = NFPROTO_IPV4,
	.hooknum = NF_INET_PRE_ROUTING,
	.priority = NF_IP_PRI_FILTER - 1,
};

int kchan_glue_hook_register(void)
{
	return nf_register_net_hook(&init_net, &kchan_hook_ops);
}

void kchan_glue_hook_unregister(void)
{
	nf_unregister_net_hook(&init_net, &kchan_hook_ops);
	/*
	 * nf_unregister_net_hook() swaps in a stub and frees the old entries with call_rcu(): it
	 * does not wait for a hook already running on another CPU. The hook runs under
	 * rcu_read_lock() (nf_hook()), so after this grace period none is left that could still
	 * reach the listener table or the netlink socket that are freed next.
	 */
	synchronize_net();
}

/* ---- process-context helpers --------------------------------------------------------------- */

struct workqueue_struct *kchan_glue_wq_create(void)
{
	return alloc_workqueue("kchan_burst", WQ_UNBOUND, 0);
}

void kchan_glue_wq_destroy(struct workqueue_struct *wq)
{
	destroy_workqueue(wq); /* drains: every queued burst has finished on return */
}

void kchan_glue_bh_disable(void)
{
	local_bh_disable();
}

void kchan_glue_bh_enable(void)
{
	local_bh_enable();
}

void kchan_glue_backoff(unsigned int us)
{
	usleep_range(us, 2 * us);
}

void kchan_glue_copy_from_page(void *dst, struct page *page, size_t offset, size_t len)
{
	/*
	 * A plain kernel copy: user space may write the page through a mapping meanwhile, which
	 * only makes the bytes stale or mixed, as for any shared memory.
	 */
	memcpy_from_page(dst, page, offset, len);
}

u64 kchan_glue_now_us(void)
{
	return div_u64(ktime_get_ns(), NSEC_PER_USEC);
}

void kchan_glue_cond_resched(void)
{
	cond_resched();
}
