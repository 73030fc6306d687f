// SPDX-License-Identifier: GPL-2.0
//! kchan: the kernel <-> user space channels of the seed demos (README.md maps them),
//! re-implemented without their bugs. One module, four channels:
//!
//! - sockopt: `nf_register_sockopt` options `[base, base + 2)` on PF_INET.
//! - netlink: a kernel netlink socket on `netlink_unit`: ICMP reports from a PRE_ROUTING
//!   netfilter hook, the netlink echo, kchan's echo and bulk bursts.
//! - procfs: /proc/kchan/buffer and /proc/kchan/stats.
//! - mmap: /proc/kchan/mmap and /proc/memshare/phymem_size.
//!
//! Layout: this file owns the shared [`State`] and the registration objects; each channel
//! lives in its own file; glue.c holds the C-only struct layouts and registrations.

use core::ffi::{c_int, c_uint};
use core::ops::RangeInclusive;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

#[allow(dead_code, unreachable_pub)]
mod abi;
mod burst;
mod compat;
mod glue;
mod icmp;
mod mmap;
mod netlink;
mod nl_transport;
mod procfs;
mod ratelimit;
mod sockopt;
mod stats;
mod text;

module! {
    type: Kchan,
    name: "kchan",
    description: "Kernel/user channels: sockopt, netlink with ICMP events, procfs, mmap",
    license: "GPL",
}

// Module parameters, published by module_param() in glue.c (which also documents them).
// Written only by the module loader before `init` runs; 0444 forbids later writes.
#[no_mangle]
#[allow(non_upper_case_globals)]
static mut kchan_param_netlink_unit: c_int = abi::NETLINK_UNIT_DEFAULT;
#[no_mangle]
#[allow(non_upper_case_globals)]
static mut kchan_param_sockopt_base: c_int = abi::SOCKOPT_BASE_DEFAULT;
#[no_mangle]
#[allow(non_upper_case_globals)]
static mut kchan_param_mmap_pages: c_uint = abi::MMAP_PAGES_DEFAULT;
#[no_mangle]
#[allow(non_upper_case_globals)]
static mut kchan_param_log_period_ms: c_uint = LOG_PERIOD_MS_DEFAULT;
#[no_mangle]
#[allow(non_upper_case_globals)]
static mut kchan_param_burst_stall_ms: c_uint = BURST_STALL_MS_DEFAULT;

const LOG_PERIOD_MS_DEFAULT: c_uint = 5000;
const LOG_PERIOD_MS: RangeInclusive<c_uint> = 100..=60_000;
const BURST_STALL_MS_DEFAULT: c_uint = 2000;
const BURST_STALL_MS: RangeInclusive<c_uint> = 10..=60_000;

/// Validated module parameters.
#[derive(Clone, Copy)]
pub(crate) struct Params {
    pub(crate) netlink_unit: i32,
    pub(crate) sockopt_base: i32,
    pub(crate) mmap_pages: usize,
    pub(crate) log_period_ms: u32,
    pub(crate) burst_stall_ms: u32,
}

impl Params {
    fn read() -> Result<Self> {
        // SAFETY: The loader wrote these before `init`; nothing writes them afterwards
        // (0444), so plain reads cannot race.
        let (unit, base, pages, period, stall) = unsafe {
            (
                ptr::addr_of!(kchan_param_netlink_unit).read(),
                ptr::addr_of!(kchan_param_sockopt_base).read(),
                ptr::addr_of!(kchan_param_mmap_pages).read(),
                ptr::addr_of!(kchan_param_log_period_ms).read(),
                ptr::addr_of!(kchan_param_burst_stall_ms).read(),
            )
        };
        if !(0..abi::NETLINK_MAX_LINKS).contains(&unit) {
            pr_err!(
                "netlink_unit {} is out of range 0..{}\n",
                unit,
                abi::NETLINK_MAX_LINKS - 1
            );
            return Err(EINVAL);
        }
        if base < 0 || base > i32::MAX - abi::SOCKOPT_COUNT {
            pr_err!("sockopt_base {} is out of range\n", base);
            return Err(EINVAL);
        }
        let pages = in_range("mmap_pages", pages, 1..=abi::MMAP_PAGES_MAX)?;
        let period = in_range("log_period_ms", period, LOG_PERIOD_MS)?;
        let stall = in_range("burst_stall_ms", stall, BURST_STALL_MS)?;
        Ok(Params {
            netlink_unit: unit,
            sockopt_base: base,
            mmap_pages: pages as usize,
            log_period_ms: period,
            burst_stall_ms: stall,
        })
    }
}

/// `value` of the parameter `name` if `range` holds it, else a log line saying so and EINVAL.
fn in_range(name: &str, value: c_uint, range: RangeInclusive<c_uint>) -> Result<c_uint> {
    if range.contains(&value) {
        return Ok(value);
    }
    pr_err!(
        "{} {} is out of range {}..{}\n",
        name,
        value,
        range.start(),
        range.end()
    );
    Err(EINVAL)
}

/// Everything the callbacks share. Allocated first and freed last, so every registration
/// (and thus every callback) lives strictly inside its lifetime.
#[pin_data]
pub(crate) struct State {
    pub(crate) params: Params,
    #[pin]
    pub(crate) sockopt: sockopt::LastMessage,
    #[pin]
    pub(crate) buffer: procfs::Buffer,
    #[pin]
    pub(crate) listeners: icmp::Listeners,
    pub(crate) netlink: nl_transport::Endpoint,
    #[pin]
    pub(crate) bursts: burst::Bursts,
    pub(crate) pages: mmap::Pages,
}

/// Published for the C callbacks, which carry no context pointer (nf_sockopt_ops, netlink
/// input, notifier). Non-null exactly while [`StateOwner`] is alive.
static STATE: AtomicPtr<State> = AtomicPtr::new(ptr::null_mut());

/// The shared state, for callbacks.
///
/// The `'static` lifetime is a promise kept by the drop order of [`Kchan`]: every
/// registration that can invoke a callback is torn down (and its in-flight callbacks waited
/// for) before [`StateOwner`] frees the state.
pub(crate) fn state() -> Result<&'static State> {
    // SAFETY: See above: the pointer is either null or points at the live, pinned state.
    unsafe { STATE.load(Ordering::Acquire).as_ref() }.ok_or(ENODEV)
}

/// Owns the state and publishes it in [`STATE`] (only read through that pointer).
struct StateOwner {
    _state: Pin<KBox<State>>,
}

impl StateOwner {
    fn new(params: Params) -> Result<Self> {
        let pages = mmap::Pages::new(params.mmap_pages)?;
        let state = KBox::pin_init(
            pin_init!(State {
                params,
                sockopt <- sockopt::LastMessage::new(),
                buffer <- procfs::Buffer::new(),
                listeners <- icmp::Listeners::new(),
                netlink: nl_transport::Endpoint::new(),
                bursts <- burst::Bursts::new(),
                pages,
            }),
            GFP_KERNEL,
        )?;
        STATE.store(ptr::from_ref::<State>(&state).cast_mut(), Ordering::Release);
        Ok(StateOwner { _state: state })
    }
}

impl Drop for StateOwner {
    fn drop(&mut self) {
        STATE.store(ptr::null_mut(), Ordering::Release);
    }
}

/// Prints the last line of an unload.
struct Farewell;

impl Drop for Farewell {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

/// The module: one registration object per channel. Fields drop in declaration order, which
/// is the reverse of the creation order in `init`: events stop first, the state goes last.
struct Kchan {
    _hook: icmp::Hook,
    _netlink: netlink::Registration,
    _notifier: icmp::ReleaseNotifier,
    _sockopt: sockopt::Registration,
    _proc: procfs::Registration,
    _state: StateOwner,
    _farewell: Farewell,
}

impl kernel::Module for Kchan {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // On an error below, the objects already created are dropped in reverse order,
        // which unregisters them: nothing is left behind by a failed load.
        let params = Params::read()?;
        // SAFETY: A plain store into glue.c's ratelimit states; no channel exists yet.
        unsafe { glue::kchan_glue_set_log_period(params.log_period_ms) };
        let state = StateOwner::new(params)?;
        let proc = procfs::Registration::new()?;
        let sockopt = sockopt::Registration::new(params.sockopt_base)?;
        // The release notifier before the socket: a listener that registers and exits at once
        // must still be forgotten.
        let notifier = icmp::ReleaseNotifier::new()?;
        let netlink = netlink::Registration::new(params.netlink_unit)?;
        let hook = icmp::Hook::new()?;
        pr_info!(
            "loaded (netlink unit {}, sockopt base {}, mmap pages {})\n",
            params.netlink_unit,
            params.sockopt_base,
            params.mmap_pages
        );
        Ok(Kchan {
            _hook: hook,
            _netlink: netlink,
            _notifier: notifier,
            _sockopt: sockopt,
            _proc: proc,
            _state: state,
            _farewell: Farewell,
        })
    }
}

impl Drop for Kchan {
    fn drop(&mut self) {
        // Runs before the fields are dropped. A successful load only, as the seed did.
        if let Ok(st) = state() {
            st.pages.log_content();
        }
    }
}
