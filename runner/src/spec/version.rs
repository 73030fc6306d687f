//! Kernel version requirements: ">=6.12", ">=6.12, <7.0", "=7.3".

/// A version requirement like ">=6.12, <7.0": a list of (op, version) pairs.
pub fn parse_version_req(s: &str) -> Result<Vec<(String, Vec<u32>)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let op_len = part
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(part.len());
        let (op, ver) = part.split_at(op_len);
        let op = op.trim();
        if !["", "=", "==", ">=", "<=", ">", "<"].contains(&op) {
            return Err(format!("invalid version operator {op:?} in {s:?}"));
        }
        let nums: Result<Vec<u32>, _> = ver.trim().split('.').map(str::parse).collect();
        match nums {
            Ok(n) if !n.is_empty() => out.push((op.to_owned(), n)),
            _ => {
                return Err(format!(
                    "invalid version {ver:?} in {s:?} (expected e.g. \">=6.12, <7.0\")"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("empty version requirement {s:?}"));
    }
    Ok(out)
}

/// Does kernel `version` ("6.12.117") satisfy `req`? Missing components compare as 0.
pub fn version_matches(req: &str, version: &str) -> bool {
    let Ok(req) = parse_version_req(req) else {
        return false;
    };
    let v: Vec<u32> = version
        .split(['.', '-'])
        .map_while(|p| p.parse().ok())
        .collect();
    req.iter().all(|(op, want)| {
        let n = want.len().max(v.len());
        let get = |x: &Vec<u32>, i: usize| x.get(i).copied().unwrap_or(0);
        // Compare only as many components as the requirement names: "=6.12" matches 6.12.117.
        let n_cmp = if op.is_empty() || op == "=" || op == "==" {
            want.len()
        } else {
            n
        };
        let ord = (0..n_cmp)
            .map(|i| get(&v, i).cmp(&get(want, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal);
        match op.as_str() {
            ">=" => ord.is_ge(),
            "<=" => ord.is_le(),
            ">" => ord.is_gt(),
            "<" => ord.is_lt(),
            _ => ord.is_eq(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(version_matches(">=6.12", "6.12.117"));
        assert!(version_matches(">=6.12, <7.0", "6.18.2"));
        assert!(!version_matches(">=6.12, <7.0", "7.3.4"));
        assert!(version_matches("=7.3", "7.3.4"));
        assert!(parse_version_req(">=six").is_err());
    }
}
