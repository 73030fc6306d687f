//! The bench rows as an aligned table or as JSON.

use super::Row;

fn num(v: f64) -> String {
    format!("{v:.1}")
}

pub fn table(rows: &[Row]) -> String {
    let mut cells = vec![[
        "name".to_string(),
        "unit".to_string(),
        "min".to_string(),
        "median".to_string(),
        "p99".to_string(),
        "ratio".to_string(),
    ]];
    for r in rows {
        cells.push([
            r.name.to_string(),
            r.unit.to_string(),
            num(r.min),
            num(r.median),
            num(r.p99),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.2}")),
        ]);
    }
    let mut w = [0usize; 6];
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let mut out = String::new();
    for c in &cells {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4],
            w5 = w[5]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".to_string()
    }
}

pub fn json(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\":\"{}\",\"unit\":\"{}\",\"min\":{},\"median\":{},\"p99\":{},\"ratio\":{}}}",
                r.name,
                r.unit,
                json_num(r.min),
                json_num(r.median),
                json_num(r.p99),
                r.ratio.map_or("null".to_string(), json_num)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let rows = vec![
            Row {
                name: "null_syscall",
                unit: "ns",
                min: 100.0,
                median: 110.0,
                p99: 200.0,
                ratio: Some(1.0),
            },
            Row {
                name: "netlink_burst_mb",
                unit: "MB/s",
                min: 1.0,
                median: 2.0,
                p99: 1.5,
                ratio: None,
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("name              unit"));
        assert!(lines[1].ends_with("1.00"));
        assert!(lines[2].ends_with("-"));
        assert_eq!(
            json(&rows[..1]),
            "[{\"name\":\"null_syscall\",\"unit\":\"ns\",\"min\":100.000,\"median\":110.000,\"p99\":200.000,\"ratio\":1.000}]"
        );
        assert_eq!(json_num(f64::NAN), "null");
    }
}
