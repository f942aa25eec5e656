//! Line charts as SVG (small enough to write by hand: axes, ticks, a
//! legend, one polyline per series), and the three plots of a run.

use crate::report::Report;
use std::fmt::Write as _;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Round tick spacing for a range.
fn tick_step(span: f64) -> f64 {
    if !(span > 0.0 && span.is_finite()) {
        return 1.0;
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of `series`.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y0 = 0.0;
    if y1 <= y0 {
        y1 = 1.0;
    }
    let y1 = y1 * 1.05;
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>
"#,
        left + pw / 2.0,
        escape(title)
    );
    // Grid and ticks.
    let xs = tick_step(x1 - x0);
    let mut x = (x0 / xs).ceil() * xs;
    while x <= x1 + xs * 1e-9 {
        let px = sx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 16.0,
            label(x)
        );
        x += xs;
    }
    let ys = tick_step(y1 - y0);
    let mut y = y0;
    while y <= y1 + ys * 1e-9 {
        let py = sy(y);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            py + 4.0,
            label(y)
        );
        y += ys;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
        left + pw / 2.0,
        h - 12.0,
        escape(x_label),
        top + ph / 2.0,
        top + ph / 2.0,
        escape(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts = String::new();
        for &(x, y) in &se.points {
            let _ = write!(pts, "{:.1},{:.1} ", sx(x), sy(y));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
            pts.trim_end()
        );
        let ly = top + 14.0 + i as f64 * 18.0;
        let lx = left + pw + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn cdf(name: &str, ms: &[f64]) -> Option<Series> {
    if ms.is_empty() {
        return None;
    }
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    Some(Series {
        name: name.into(),
        points: v
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, (i + 1) as f64 / n))
            .collect(),
    })
}

/// The plots of a run: (file name, SVG).
pub fn plots(r: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ok = |ops: &[crate::report::OpSample]| -> Vec<f64> {
        ops.iter().filter(|o| o.ok).map(|o| o.ms).collect()
    };
    let curves: Vec<Series> = [
        cdf("DHT lookup", &ok(&r.lookups)),
        cdf("get (whole file)", &ok(&r.gets)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !curves.is_empty() {
        out.push((
            "latency_cdf.svg".into(),
            line_chart(
                &format!("{}: latency CDF (seed {})", r.scenario, r.seed),
                "simulated milliseconds",
                "share of operations",
                &curves,
            ),
        ));
    }
    if r.samples.iter().any(|s| s.replicated > 0) {
        let hours = r.samples.last().is_some_and(|s| s.t > 3.0 * 3600.0);
        let (unit, div) = if hours {
            ("hours", 3600.0)
        } else {
            ("seconds", 1.0)
        };
        let series = |name: &str, f: &dyn Fn(&crate::report::Sample) -> f64| Series {
            name: name.into(),
            points: r.samples.iter().map(|s| (s.t / div, f(s))).collect(),
        };
        out.push((
            "replication.svg".into(),
            line_chart(
                &format!("{}: replication over time (seed {})", r.scenario, r.seed),
                &format!("simulated {unit}"),
                "files / nodes",
                &[
                    series("files at factor", &|s| s.at_factor as f64),
                    series("below factor", &|s| s.below_factor as f64),
                    series("no live copy", &|s| s.unavailable as f64),
                    series("lost", &|s| s.lost as f64),
                    series("nodes up", &|s| s.nodes_up as f64),
                ],
            ),
        ));
        let minutes = |v: &[f64]| v.iter().map(|s| s / 60.0).collect::<Vec<f64>>();
        let times: Vec<Series> = [
            cdf(
                "restore the factor (grace included)",
                &minutes(&r.repair_times),
            ),
            cdf("place a new file's copies", &minutes(&r.placement_times)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !times.is_empty() {
            out.push((
                "repair_cdf.svg".into(),
                line_chart(
                    &format!(
                        "{}: repair and placement times (seed {})",
                        r.scenario, r.seed
                    ),
                    "simulated minutes (sampled)",
                    "share of episodes",
                    &times,
                ),
            ));
        }
        out.push((
            "bytes.svg".into(),
            line_chart(
                &format!("{}: bytes moved (seed {})", r.scenario, r.seed),
                &format!("simulated {unit}"),
                "MiB (cumulative)",
                &[
                    series("repair fetches", &|s| s.repair_bytes as f64 / 1048576.0),
                    series("all traffic", &|s| s.network_bytes as f64 / 1048576.0),
                ],
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_svg_with_every_series() {
        let svg = line_chart(
            "t <1>",
            "x",
            "y",
            &[
                Series {
                    name: "a".into(),
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Series {
                    name: "b".into(),
                    points: vec![],
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;1&gt;"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(7.0), 1.0);
        assert_eq!(tick_step(0.0), 1.0);
    }
}
