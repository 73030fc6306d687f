// SPDX-License-Identifier: GPL-2.0
//! Every log line whose content or frequency user space controls goes through a budget (the
//! kernel's ratelimit states, in glue.c): a flood of requests gives a bounded number of lines
//! and a count of the suppressed ones.

use crate::glue;

#[derive(Clone, Copy)]
pub(crate) enum Budget {
    /// Any user can send netlink echoes.
    Echo,
    /// Paths that need CAP_NET_ADMIN or root: sockopt set, proc write, listeners.
    Admin,
}

/// May one more line of `budget` be logged now?
pub(crate) fn allowed(budget: Budget) -> bool {
    // SAFETY: Plain calls; the ratelimit states are static in glue.c.
    unsafe {
        match budget {
            Budget::Echo => glue::kchan_glue_log_echo(),
            Budget::Admin => glue::kchan_glue_log_admin(),
        }
    }
}

/// `pr_info!` within `budget`.
macro_rules! pr_info_limited {
    ($budget:expr, $($arg:tt)*) => {
        if $crate::ratelimit::allowed($budget) {
            kernel::pr_info!($($arg)*);
        }
    };
}
pub(crate) use pr_info_limited;
