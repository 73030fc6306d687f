//! The project's own figures: the rows its guest bench command prints, each as is or as a
//! ratio to a reference row measured in the same guest, as kspec.toml's `[[bench.figure]]`
//! say.

use std::collections::HashMap;

use super::figure::{Figure, Target};
use crate::project::BenchFigure;

/// One row of the guest command's JSON array.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub unit: String,
    pub min: f64,
    pub median: f64,
    pub p99: f64,
}

/// The rows of the guest command's output, by name.
pub(super) fn parse_rows(json: &str) -> Result<HashMap<String, Row>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("guest bench output: {e}"))?;
    let rows = v
        .as_array()
        .ok_or("guest bench output is not a JSON array")?;
    let mut out = HashMap::new();
    for r in rows {
        let name = r["name"]
            .as_str()
            .ok_or_else(|| format!("guest bench row without a name: {r}"))?;
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let row = Row {
            unit: r["unit"].as_str().unwrap_or("").to_owned(),
            min: g("min"),
            median: g("median"),
            p99: g("p99"),
        };
        out.insert(name.to_owned(), row);
    }
    Ok(out)
}

/// Each configured figure from `rows`; a row a figure names but the guest did not print is an
/// error, not a figure against nothing.
pub(super) fn figures(
    defs: &[BenchFigure],
    rows: &HashMap<String, Row>,
) -> Result<Vec<Figure>, String> {
    let get = |n: &str| {
        rows.get(n)
            .ok_or_else(|| format!("the guest bench printed no `{n}` row"))
    };
    defs.iter()
        .map(|d| {
            let row = get(&d.row)?;
            let (base, unit) = match (&d.against, d.divide_by) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "bench figure {:?}: give `against` or `divide_by`, not both",
                        d.name
                    ))
                }
                (Some(r), None) => (get(r)?.median, "x".to_owned()),
                (None, Some(c)) => (c, "x".to_owned()),
                (None, None) => (1.0, row.unit.clone()),
            };
            let target = match (d.at_most, d.at_least) {
                (Some(t), None) => Target::AtMost(t),
                (None, Some(t)) => Target::AtLeast(t),
                (None, None) => Target::None,
                _ => {
                    return Err(format!(
                        "bench figure {:?}: give `at_most` or `at_least`, not both",
                        d.name
                    ))
                }
            };
            Ok(Figure {
                name: d.name.clone(),
                unit,
                min: row.min / base,
                median: row.median / base,
                max: row.p99 / base,
                max_is_p99: true,
                target,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figure::{render_table, to_svg};

    const ROWS: &str = r#"[{"name":"null_syscall","unit":"ns","min":400,"median":500,"p99":600},
        {"name":"sockopt_get","unit":"ns","min":1000,"median":1500,"p99":2000},
        {"name":"ip_ttl_get","unit":"ns","min":500,"median":600,"p99":700},
        {"name":"netlink_burst","unit":"msgs/s","min":1,"median":150000,"p99":2},
        {"name":"memcpy","unit":"MB/s","min":1000,"median":1000,"p99":1000},
        {"name":"mmap_write","unit":"MB/s","min":800,"median":900,"p99":950}]"#;

    fn def(name: &str, row: &str, against: Option<&str>, divide_by: Option<f64>) -> BenchFigure {
        BenchFigure {
            name: name.into(),
            row: row.into(),
            against: against.map(Into::into),
            divide_by,
            at_most: None,
            at_least: None,
        }
    }

    #[test]
    fn rows_become_figures_as_is_or_against_a_reference() {
        let rows = parse_rows(ROWS).unwrap();
        let mut sockopt = def("sockopt / ttl", "sockopt_get", Some("ip_ttl_get"), None);
        sockopt.at_most = Some(2.0);
        let mut seed = def("burst / seed", "netlink_burst", None, Some(4013.0));
        seed.at_least = Some(25.0);
        let mut mmap = def("mmap", "mmap_write", Some("memcpy"), None);
        mmap.at_least = Some(0.9);
        let plain = def("null", "null_syscall", None, None);
        let figs = figures(&[sockopt, seed, mmap, plain], &rows).unwrap();
        // 1500 / 600 = 2.5 > 2: slower than twice the kernel's own getsockopt.
        assert!((figs[0].median - 2.5).abs() < 1e-9);
        assert_eq!((figs[0].unit.as_str(), figs[0].met()), ("x", Some(false)));
        assert!((figs[0].max - 2000.0 / 600.0).abs() < 1e-9 && figs[0].max_is_p99);
        assert!((figs[1].median - 150000.0 / 4013.0).abs() < 1e-9);
        assert_eq!(figs[1].met(), Some(true));
        assert_eq!(figs[2].met(), Some(true));
        assert_eq!((figs[3].unit.as_str(), figs[3].median), ("ns", 500.0));
        assert!(matches!(figs[3].target, Target::None));
        let table = render_table(&figs);
        assert!(
            table.contains("NO") && table.contains("600.0 (p99)"),
            "{table}"
        );
        let svg = to_svg("t", &figs);
        assert!(svg.starts_with("<svg") && svg.contains("target"));
    }

    #[test]
    fn a_missing_row_or_a_doubled_option_is_an_error() {
        let rows = parse_rows(ROWS).unwrap();
        let e = figures(&[def("x", "netlink_echo", None, None)], &rows).unwrap_err();
        assert_eq!(e, "the guest bench printed no `netlink_echo` row");
        let e = figures(&[def("x", "memcpy", Some("ip_ttl_get"), Some(2.0))], &rows);
        assert!(e.unwrap_err().contains("not both"));
        assert!(parse_rows("{}").is_err() && parse_rows("[{\"unit\":\"x\"}]").is_err());
    }
}
