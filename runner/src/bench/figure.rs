//! The figure model of `kspec bench` and its renderings: table, JSON, SVG chart.

use serde_json::json;

#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At most this much (times).
    AtMost(f64),
    /// At least this much (rates, ratios where bigger is better).
    AtLeast(f64),
    /// No target: a figure shown for what it tells (a breakdown, a baseline).
    None,
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub median: f64,
    /// The largest sample, or a guest row's 99th percentile when `max_is_p99`.
    pub max: f64,
    pub max_is_p99: bool,
    pub target: Target,
}

impl Figure {
    pub fn from_samples(name: &str, unit: &str, mut samples: Vec<f64>, target: Target) -> Figure {
        samples.retain(|v| v.is_finite());
        samples.sort_by(f64::total_cmp);
        let median = if samples.is_empty() {
            f64::NAN
        } else {
            samples[samples.len() / 2]
        };
        Figure {
            name: name.into(),
            unit: unit.into(),
            min: samples.first().copied().unwrap_or(f64::NAN),
            median,
            max: samples.last().copied().unwrap_or(f64::NAN),
            max_is_p99: false,
            target,
        }
    }

    /// median / target: <= 1 meets an AtMost target, >= 1 meets an AtLeast one.
    pub fn ratio(&self) -> Option<f64> {
        match self.target {
            Target::AtMost(t) | Target::AtLeast(t) => Some(self.median / t),
            Target::None => None,
        }
    }

    /// Whether the target is met; None without one.
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::AtMost(t) => Some(self.median <= t),
            Target::AtLeast(t) => Some(self.median >= t),
            Target::None => None,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtMost(t) => format!("<= {}", num(t)),
            Target::AtLeast(t) => format!(">= {}", num(t)),
            Target::None => "-".into(),
        }
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

pub fn render_table(figures: &[Figure]) -> String {
    let mut s = format!(
        "{:<50} {:<7} {:>10} {:>10} {:>14} {:>12} {:>6}  {}\n",
        "figure", "unit", "min", "median", "max", "target", "ratio", "met"
    );
    for f in figures {
        let max = if f.max_is_p99 {
            format!("{} (p99)", num(f.max))
        } else {
            num(f.max)
        };
        s.push_str(&format!(
            "{:<50} {:<7} {:>10} {:>10} {:>14} {:>12} {:>6}  {}\n",
            f.name,
            f.unit,
            num(f.min),
            num(f.median),
            max,
            f.target_text(),
            f.ratio().map_or("-".into(), |r| format!("{r:.2}")),
            match f.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        ));
    }
    s
}

pub fn to_json(kernel: &str, accel: &str, figures: &[Figure]) -> serde_json::Value {
    json!({
        "kernel": kernel,
        "accel": accel,
        "figures": figures.iter().map(|f| json!({
            "name": f.name, "unit": f.unit, "min": f.min, "median": f.median,
            "max": (!f.max_is_p99).then_some(f.max), "p99": f.max_is_p99.then_some(f.max),
            "target": match f.target { Target::AtMost(t) | Target::AtLeast(t) => Some(t), Target::None => None },
            "target_kind": match f.target { Target::AtMost(_) => "at_most", Target::AtLeast(_) => "at_least", Target::None => "none" },
            "ratio": f.ratio(), "met": f.met(),
        })).collect::<Vec<_>>(),
    })
}

/// A horizontal bar per figure, scaled so that the target is the dashed line: for "at most"
/// figures a bar left of the line is good, for "at least" ones a bar right of it.
pub fn to_svg(title: &str, figures: &[Figure]) -> String {
    let row = 28.0;
    let left = 260.0;
    let width = 420.0;
    // Only figures with a target have a place on an axis scaled by it.
    let figures: Vec<&Figure> = figures.iter().filter(|f| f.ratio().is_some()).collect();
    let height = 60.0 + row * figures.len() as f64;
    // The axis spans 0..2 x target, bars are clamped at the edge.
    let scale = width / 2.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>\n",
        xml(title),
        w = left + width + 240.0
    );
    for (i, f) in figures.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let r = f.ratio().unwrap_or(f64::NAN);
        let bar = if r.is_finite() {
            (r.min(2.0)) * scale
        } else {
            0.0
        };
        let color = if f.met() == Some(true) {
            "#3a9a4a"
        } else {
            "#c0392b"
        };
        let how = match f.target {
            Target::AtMost(_) => "lower is better",
            Target::AtLeast(_) | Target::None => "higher is better",
        };
        s.push_str(&format!(
            "<text x=\"10\" y=\"{ty}\">{}</text>\n<rect x=\"{left}\" y=\"{y}\" width=\"{bar:.1}\" height=\"18\" fill=\"{color}\"/>\n\
             <text x=\"{tx:.1}\" y=\"{ty}\">{r:.2}x target ({how})</text>\n",
            xml(&f.name),
            ty = y + 13.0,
            tx = left + bar + 6.0,
        ));
    }
    let x = left + scale;
    s.push_str(&format!(
        "<line x1=\"{x}\" y1=\"32\" x2=\"{x}\" y2=\"{}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">target</text>\n</svg>\n",
        height - 14.0,
        height - 2.0
    ));
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_compare_medians_with_targets() {
        let f = Figure::from_samples("boot", "s", vec![1.2, 0.4, 0.9], Target::AtMost(0.5));
        assert_eq!((f.min, f.median, f.max), (0.4, 0.9, 1.2));
        assert_eq!(f.met(), Some(false));
        assert!((f.ratio().unwrap() - 1.8).abs() < 1e-9);
        let g = Figure::from_samples("burst", "msgs/s", vec![200000.0], Target::AtLeast(100325.0));
        assert_eq!(g.met(), Some(true));
        let info = Figure::from_samples("phase", "s", vec![1.0], Target::None);
        assert_eq!((info.met(), info.ratio()), (None, None));
        assert!(render_table(&[info]).contains(" -  "));
    }
}
