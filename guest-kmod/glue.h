/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kchan: the boundary between the thin C glue (glue.c) and the Rust logic.
 *
 * glue.c only holds what the kernel's Rust crate lacks on 6.12 (and still on 7.3): struct
 * layouts (proc_ops, nf_sockopt_ops, nf_hook_ops, netlink_kernel_cfg, notifier_block),
 * module_param(), and one-line wrappers around static inline helpers. Every decision is
 * taken in Rust. The Rust side mirrors these prototypes in glue.rs; keep both in sync.
 */
#ifndef KCHAN_GLUE_H
#define KCHAN_GLUE_H

#include <linux/types.h>
#include <linux/sockptr.h>

struct file;
struct seq_file;
struct sk_buff;
struct sock;
struct vm_area_struct;
struct nlmsghdr;
struct workqueue_struct;

/* ---- Module parameters: defined in Rust (defaults from abi.rs), exposed by module_param(). */
extern int kchan_param_netlink_unit;
extern int kchan_param_sockopt_base;
extern unsigned int kchan_param_mmap_pages;
extern unsigned int kchan_param_log_period_ms;
extern unsigned int kchan_param_burst_stall_ms;

/* ---- Implemented in Rust, called by glue.c ----------------------------------------------- */
/* sockopt.rs */
int kchan_sockopt_set(struct sock *sk, int optval, const sockptr_t *arg, unsigned int len);
int kchan_sockopt_get(struct sock *sk, int optval, void __user *user, int *len);
/* netlink.rs: process context of the sender. */
void kchan_netlink_input(struct sk_buff *skb);
/* netlink.rs: NETLINK_URELEASE of a bound netlink socket in init_net (process context). */
void kchan_netlink_release(int protocol, u32 portid);
/* icmp.rs: every IPv4 packet at PRE_ROUTING (softirq). Addresses in network byte order. */
void kchan_ipv4_packet(u8 protocol, __be32 saddr, __be32 daddr);
/* procfs.rs */
ssize_t kchan_buffer_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);
ssize_t kchan_buffer_write(struct file *file, const char __user *buf, size_t count,
			   loff_t *ppos);
int kchan_stats_show(struct seq_file *m);
int kchan_memshare_size_show(struct seq_file *m);
/* mmap.rs */
ssize_t kchan_mmap_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);
int kchan_mmap(struct vm_area_struct *vma, unsigned long start, unsigned long end,
	       unsigned long pgoff, bool shared);
struct page *kchan_mmap_page(unsigned long pgoff);

/* ---- Implemented in glue.c, called by Rust ----------------------------------------------- */
int kchan_glue_proc_register(void);
void kchan_glue_proc_unregister(void);
int kchan_glue_sockopt_register(int optmin, int optmax);
void kchan_glue_sockopt_unregister(void);
struct sock *kchan_glue_netlink_create(int unit);
void kchan_glue_netlink_release(struct sock *sk);
int kchan_glue_notifier_register(void);
void kchan_glue_notifier_unregister(void);
int kchan_glue_hook_register(void);
void kchan_glue_hook_unregister(void);
struct workqueue_struct *kchan_glue_wq_create(void);
void kchan_glue_wq_destroy(struct workqueue_struct *wq);

bool kchan_glue_sk_init_net(struct sock *sk);
bool kchan_glue_net_admin(void);
void kchan_glue_set_log_period(unsigned int ms);
bool kchan_glue_log_echo(void);
bool kchan_glue_log_admin(void);
int kchan_glue_copy_from_sockptr(void *dst, const sockptr_t *src, size_t len);
const u8 *kchan_glue_skb_data(struct sk_buff *skb, u32 *len);
u32 kchan_glue_skb_portid(struct sk_buff *skb);
bool kchan_glue_skb_net_admin(struct sk_buff *skb);
void kchan_glue_ack(struct sk_buff *in_skb, const struct nlmsghdr *nlh, int err);
struct sk_buff *kchan_glue_nlmsg_new(u16 type, u32 seq, u32 len, bool atomic, void **payload);
int kchan_glue_unicast(struct sock *sk, struct sk_buff *skb, u32 portid);
void kchan_glue_bh_disable(void);
void kchan_glue_bh_enable(void);
void kchan_glue_backoff(unsigned int us);
void kchan_glue_cond_resched(void);
void kchan_glue_copy_from_page(void *dst, struct page *page, size_t offset, size_t len);
u64 kchan_glue_now_us(void);

#endif /* KCHAN_GLUE_H */
