//! The plots of a run (latency CDFs, replication over time, repair and
//! placement times, bytes moved): SVG line charts drawn with `plotters`.

use crate::report::{OpSample, Report, Sample};
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart {title:?}: {source}")]
pub struct PlotError {
    /// The chart's title.
    pub title: String,
    /// What plotters reported.
    #[source]
    pub source: DrawingAreaErrorKind<std::io::Error>,
}

/// One line of a chart: its legend entry and its (x, y) points.
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// The size of every chart, in pixels.
const SIZE: (u32, u32) = (860, 440);
/// Width of the legend to the right of the plotting area.
const LEGEND_WIDTH: u32 = 270;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// An axis label: whole numbers without decimals, small ones with two.
fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The axes' ranges: x over the points, y from 0 to a little above the
/// highest point.
fn ranges(series: &[Series]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
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
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    (x0..x1, 0.0..y1 * 1.05)
}

/// An SVG line chart of `series`, with the legend to the right.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, PlotError> {
    let mut svg = String::new();
    draw(&mut svg, title, x_label, y_label, series).map_err(|source| PlotError {
        title: title.to_string(),
        source,
    })?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let (x_range, y_range) = ranges(series);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 19))
        .margin(10)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .axis_style(BLACK.mix(0.8))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| label(*v))
        .y_label_formatter(&|v| label(*v))
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))?;
    }
    draw_legend(&legend, series)?;
    root.present()
}

/// One entry per series: a short line in its colour and its name.
fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = 48 + i as i32 * 22;
        area.draw(&PathElement::new(
            vec![(6, y), (26, y)],
            color.stroke_width(3),
        ))?;
        area.draw(&Text::new(
            s.name.clone(),
            (32, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

fn cdf(name: &str, values: &[f64]) -> Option<Series> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
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
pub fn plots(r: &Report) -> Result<Vec<(String, String)>, PlotError> {
    let mut out = Vec::new();
    let ok = |ops: &[OpSample]| -> Vec<f64> { ops.iter().filter(|o| o.ok).map(|o| o.ms).collect() };
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
            )?,
        ));
    }
    if !r.samples.iter().any(|s| s.replicated > 0) {
        return Ok(out);
    }
    let hours = r.samples.last().is_some_and(|s| s.t > 3.0 * 3600.0);
    let (unit, div) = if hours {
        ("hours", 3600.0)
    } else {
        ("seconds", 1.0)
    };
    let series = |name: &str, f: &dyn Fn(&Sample) -> f64| Series {
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
        )?,
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
            )?,
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
        )?,
    ));
    Ok(out)
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
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">\na\n</text>") && svg.contains(">\nb\n</text>"));
        assert!(svg.contains("t &lt;1&gt;"));
    }

    #[test]
    fn ranges_start_at_zero_and_never_collapse() {
        assert_eq!(ranges(&[]), (0.0..1.0, 0.0..1.05));
        let one = Series {
            name: "a".into(),
            points: vec![(5.0, 0.0)],
        };
        assert_eq!(ranges(&[one]), (5.0..6.0, 0.0..1.05));
    }
}
