//! Accuracy–cost scatter plots as self-contained SVG (plotters' SVG backend: text stays text,
//! no font files needed), for run folders and reports.

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// How a series' points are drawn.
#[derive(Debug, Clone, Copy)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Filled square.
    Square,
    /// Filled triangle.
    Triangle,
}

/// Named points `(cost, accuracy %)`.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Marker shape.
    pub marker: Marker,
    /// Marker colour.
    pub color: RGBColor,
}

/// A scatter of accuracy against a cost drawn on a log axis, with `line` (a frontier) through
/// its points in cost order, as SVG text.
pub fn scatter_svg(
    title: &str,
    x_label: &str,
    series: &[Series],
    line: Option<(&str, Vec<(f64, f64)>)>,
) -> Result<String> {
    scatter_with_limits_svg(title, x_label, series, line, &[])
}

/// [`scatter_svg`] with vertical dashed lines at named costs (a board's or a budget's
/// limits), the axis widened to show them.
pub fn scatter_with_limits_svg(
    title: &str,
    x_label: &str,
    series: &[Series],
    line: Option<(&str, Vec<(f64, f64)>)>,
    limits: &[(&str, f64)],
) -> Result<String> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let (x_min, x_max) = all
        .iter()
        .map(|p| p.0)
        .chain(limits.iter().map(|l| l.1))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
    let (y_min, y_max) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
    let pad = ((y_max - y_min) * 0.08).max(0.5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (x_min.max(1e-3) * 0.8..x_max * 1.25).log_scale(),
                (y_min - pad)..(y_max + pad).min(100.5),
            )
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("accuracy (%)")
            .x_label_formatter(&|x| format_cost(*x))
            .draw()
            .map_err(|e| fail(&e))?;
        if let Some((name, mut points)) = line {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(points, BLACK.stroke_width(1)))
                .map_err(|e| fail(&e))?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
        }
        let (y_lo, y_hi) = (y_min - pad, (y_max + pad).min(100.5));
        for &(name, x) in limits {
            let dashes = (0..20).map(|i| {
                let t = |k: f64| y_lo + (y_hi - y_lo) * k / 20.0;
                PathElement::new(
                    vec![(x, t(i as f64)), (x, t(i as f64 + 0.5))],
                    RED.stroke_width(2),
                )
            });
            chart
                .draw_series(dashes)
                .map_err(|e| fail(&e))?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
        }
        for s in series {
            let color = s.color;
            let drawn = match s.marker {
                Marker::Circle => {
                    chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                }
                Marker::Square => chart.draw_series(s.points.iter().map(|&p| {
                    EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], color.filled())
                })),
                Marker::Triangle => chart.draw_series(
                    s.points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 6, color.filled())),
                ),
            }
            .map_err(|e| fail(&e))?;
            drawn.label(s.name).legend(move |(x, y)| {
                Rectangle::new([(x + 4, y - 4), (x + 12, y + 4)], color.filled())
            });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// `231k`, `3.2M`: a compact count for an axis.
fn format_cost(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_holds_every_point_the_line_and_the_labels() {
        let svg = scatter_svg(
            "test",
            "MACs",
            &[
                Series {
                    name: "anchors",
                    points: vec![(2e5, 91.0), (3e6, 93.0)],
                    marker: Marker::Square,
                    color: BLUE,
                },
                Series {
                    name: "stitches",
                    points: vec![(5e5, 90.0)],
                    marker: Marker::Circle,
                    color: RED,
                },
            ],
            Some(("frontier", vec![(3e6, 93.0), (2e5, 91.0)])),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for text in ["anchors", "stitches", "frontier", "MACs", "accuracy (%)"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // One circle: the stitch (squares and legend keys are rectangles).
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("<polyline"));
        assert!(scatter_svg("empty", "MACs", &[], None).is_err());
    }
}
