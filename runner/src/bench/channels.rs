//! The channel figures: `kchanctl bench all --json` rows, each channel as a ratio to a
//! physical reference measured in the same guest.

use super::figure::{Figure, Target};
use super::SEED_BURST_RATE;

/// Channel rows of `kchanctl bench all --json`, by name: (min, median, p99).
pub(super) fn parse_kchanctl(
    json: &str,
) -> Result<std::collections::HashMap<String, (f64, f64, f64)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("kchanctl bench output: {e}"))?;
    let rows = v
        .as_array()
        .ok_or("kchanctl bench output is not a JSON array")?;
    let mut out = std::collections::HashMap::new();
    for r in rows {
        let name = r["name"].as_str().unwrap_or("").to_owned();
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        out.insert(name, (g("min"), g("median"), g("p99")));
    }
    Ok(out)
}

/// A kchanctl row (min, median, p99) as a figure, each value divided by `base` (1: as is).
fn row_figure(
    name: &str,
    unit: &str,
    (min, median, max): (f64, f64, f64),
    base: f64,
    target: Target,
) -> Figure {
    Figure {
        name: name.into(),
        unit: unit.into(),
        min: min / base,
        median: median / base,
        max: max / base,
        target,
    }
}

pub(super) fn channel_figures(
    rows: &std::collections::HashMap<String, (f64, f64, f64)>,
) -> Result<Vec<Figure>, String> {
    let get = |n: &str| {
        rows.get(n)
            .copied()
            .ok_or_else(|| format!("kchanctl bench has no `{n}` row"))
    };
    let null = get("null_syscall")?;
    let burst = get("netlink_burst")?;
    let mut figs = vec![row_figure(
        "null syscall (getppid)",
        "ns",
        null,
        1.0,
        Target::None,
    )];
    // Each channel against the same class of work done by the kernel's own code: ratios to
    // the reference's median (min and max keep the row's spread).
    let against = |row: &str, reference: &str, name: &str, target: Target| {
        Ok::<_, String>(row_figure(name, "x", get(row)?, get(reference)?.1, target))
    };
    for (row, reference, name, target) in [
        (
            "netlink_echo",
            "unix_dgram_rtt",
            "netlink echo / UNIX datagram round trip",
            Target::AtMost(1.5),
        ),
        (
            "sockopt_get",
            "ip_ttl_get",
            "sockopt get / getsockopt(IP_TTL)",
            Target::AtMost(2.0),
        ),
        (
            "proc_read",
            "proc_ref_read",
            "proc read / read of /proc/version",
            Target::AtMost(2.0),
        ),
        (
            "sockopt_get",
            "null_syscall",
            "sockopt get / null syscall",
            Target::None,
        ),
        (
            "proc_read",
            "null_syscall",
            "proc read / null syscall",
            Target::None,
        ),
        (
            "netlink_echo",
            "null_syscall",
            "netlink echo / null syscall",
            Target::None,
        ),
    ] {
        figs.push(against(row, reference, name, target)?);
    }
    figs.push(row_figure(
        "netlink burst",
        "msgs/s",
        burst,
        1.0,
        Target::AtLeast(25.0 * SEED_BURST_RATE),
    ));
    figs.push(row_figure(
        "netlink burst / the seed's 4013 msgs/s",
        "x",
        burst,
        SEED_BURST_RATE,
        Target::AtLeast(25.0),
    ));
    for (row, reference, name, target) in [
        (
            "netlink_burst",
            "unix_dgram_burst",
            "netlink burst / UNIX datagram burst",
            Target::AtLeast(0.5),
        ),
        (
            "mmap_write",
            "memcpy",
            "mmap write / in-guest memcpy",
            Target::AtLeast(0.9),
        ),
    ] {
        figs.push(against(row, reference, name, target)?);
    }
    Ok(figs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figure::{render_table, to_svg};

    #[test]
    fn channel_rows_become_ratios_to_their_references() {
        let json = r#"[{"name":"null_syscall","unit":"ns","min":400,"median":500,"p99":600,"ratio":1.0},
            {"name":"sockopt_get","unit":"ns","min":1000,"median":1500,"p99":2000,"ratio":3.0},
            {"name":"ip_ttl_get","unit":"ns","min":500,"median":600,"p99":700,"ratio":1.2},
            {"name":"proc_read","unit":"ns","min":900,"median":1000,"p99":1200,"ratio":2.0},
            {"name":"proc_ref_read","unit":"ns","min":900,"median":1000,"p99":1100,"ratio":2.0},
            {"name":"netlink_echo","unit":"ns","min":5000,"median":6000,"p99":9000,"ratio":12.0},
            {"name":"unix_dgram_rtt","unit":"ns","min":2000,"median":3000,"p99":4000,"ratio":6.0},
            {"name":"netlink_burst","unit":"msgs/s","min":1,"median":150000,"p99":2,"ratio":null},
            {"name":"unix_dgram_burst","unit":"msgs/s","min":1,"median":200000,"p99":2,"ratio":null},
            {"name":"memcpy","unit":"MB/s","min":1000,"median":1000,"p99":1000,"ratio":1.0},
            {"name":"mmap_write","unit":"MB/s","min":800,"median":900,"p99":950,"ratio":0.9}]"#;
        let figs = channel_figures(&parse_kchanctl(json).unwrap()).unwrap();
        let by = |n: &str| figs.iter().find(|f| f.name.starts_with(n)).unwrap().clone();
        // 1500 / 600 = 2.5 > 2: a sockopt get slower than twice the kernel's own getsockopt.
        let sockopt = by("sockopt get / getsockopt");
        assert!((sockopt.median - 2.5).abs() < 1e-9 && sockopt.met() == Some(false));
        let echo = by("netlink echo / UNIX");
        assert!((echo.median - 2.0).abs() < 1e-9 && echo.met() == Some(false));
        assert_eq!(by("proc read / read of").met(), Some(true));
        assert!((by("netlink burst / UNIX").median - 0.75).abs() < 1e-9);
        assert_eq!(by("netlink burst / the seed").met(), Some(true));
        assert_eq!(by("netlink burst").met(), Some(true));
        let mmap = by("mmap");
        assert!((mmap.median - 0.9).abs() < 1e-9 && mmap.met() == Some(true));
        let svg = to_svg("t", &figs[1..]);
        assert!(svg.starts_with("<svg") && svg.contains("target"));
        assert!(render_table(&figs).contains("NO"));
        // A kchanctl without a reference row is an error, not a figure against nothing.
        let old = json.replace("ip_ttl_get", "something_else");
        assert!(channel_figures(&parse_kchanctl(&old).unwrap()).is_err());
    }
}
