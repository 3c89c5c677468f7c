//! `report.html`: the summary as one self-contained page — the comparison table, accuracy
//! against latency and against SRAM with the budget and the board drawn, each method's
//! details, the winner's confusion matrix — rendered from [`Summary`] alone, so every number
//! on the page is one in `summary.json`.

use std::fmt::Write as _;

use plotters::style::RGBColor;

use super::summary::{Candidate, Family, Summary};
use crate::plot::{Marker, Series, scatter_svg, scatter_with_limits_svg};
use crate::report::thousands;

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}\
th{background:#eee}td:first-child,th:first-child{text-align:left}\
tr.winner{background:#e6f4e6;font-weight:bold}tr.over{color:#999}\
figure{margin:1em 0}h2{border-bottom:1px solid #ccc}";

/// The page.
pub fn render(s: &Summary) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tinyfit run: {} on {}</title><style>{STYLE}</style></head><body>\n",
        esc(&s.dataset.kind),
        esc(&s.board.title)
    );
    let _ = write!(
        h,
        "<h1>tinyfit run: {} on {}</h1>\n<p>Dataset <code>{}</code> ({} classes; {} training, {} validation, {} test samples). Board {} at {} MHz ({} B SRAM, {} B flash, {} mW active). Budget: {} ms, {} B SRAM, {} B flash. Preset: {}.</p>\n",
        esc(&s.dataset.kind),
        esc(&s.board.title),
        esc(&s.dataset.path.display().to_string()),
        s.dataset.classes.len(),
        thousands(s.dataset.split_sizes[0]),
        thousands(s.dataset.split_sizes[1]),
        thousands(s.dataset.split_sizes[2]),
        esc(&s.board.title),
        s.board.clock_mhz,
        thousands(s.board.sram_bytes),
        thousands(s.board.flash_bytes),
        s.board.active_mw,
        s.budget.latency_ms,
        thousands(s.budget.sram_bytes),
        thousands(s.budget.flash_bytes),
        esc(&s.preset)
    );
    winner_line(&mut h, s);
    comparison(&mut h, s);
    plots(&mut h, s);
    details(&mut h, s);
    confusion(&mut h, s);
    stages(&mut h, s);
    h.push_str("</body></html>\n");
    h
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

fn winner_line(h: &mut String, s: &Summary) {
    match &s.winner {
        Some(w) => {
            let c = &s.candidates[w.candidate];
            let _ = writeln!(
                h,
                "<p id=\"winner\"><strong>Winner: {}</strong> — int8 validation {} %, test {} %; {:.2} ms, {} B flash, {} B SRAM. Package: <code>{}</code>{}{}.</p>",
                esc(&c.name),
                pct(c.validation_accuracy),
                pct(c.test_accuracy),
                c.latency_ms,
                thousands(c.flash_bytes),
                thousands(c.peak_sram_bytes),
                esc(&w.package.display().to_string()),
                w.tflite.as_ref().map_or(String::new(), |t| format!(
                    ", <code>{}</code>",
                    esc(&t.display().to_string())
                )),
                match (w.qemu_samples, w.qemu_differing_bytes) {
                    (Some(n), Some(d)) => format!(
                        "; in QEMU on {n} test samples, {d} output bytes differ from tinyfit's runtime"
                    ),
                    (None, Some(d)) =>
                        format!("; in QEMU, {d} test samples differ from tinyfit's runtime"),
                    _ => String::new(),
                }
            );
        }
        None => {
            h.push_str("<p id=\"winner\"><strong>No candidate meets the budget.</strong></p>\n")
        }
    }
}

fn family(f: Family) -> &'static str {
    match f {
        Family::Trained => "trained",
        Family::TopDown => "top-down",
        Family::BottomUp => "bottom-up",
    }
}

fn comparison(h: &mut String, s: &Summary) {
    h.push_str("<h2>Comparison</h2>\n<p>Every candidate measured alike: int8 on tinyfit's runtime (validation chooses, test reports), flash and peak SRAM of its C package built for the board, latency estimated from the instructions it executes on the emulated core, energy = latency × active power.</p>\n");
    h.push_str("<table id=\"comparison\"><tr><th>candidate</th><th>family</th><th>params</th><th>MACs</th><th>flash B</th><th>peak SRAM B</th><th>latency ms</th><th>energy µJ</th><th>val. % (int8)</th><th>test % (int8)</th><th>union %</th><th>training s</th><th>within budget</th></tr>\n");
    for (i, c) in s.candidates.iter().enumerate() {
        let class = if s.winner.as_ref().is_some_and(|w| w.candidate == i) {
            " class=\"winner\""
        } else if !c.fits() {
            " class=\"over\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            family(c.family),
            thousands(c.params),
            thousands(c.macs),
            thousands(c.flash_bytes),
            thousands(c.peak_sram_bytes),
            c.latency_ms,
            c.energy_uj,
            pct(c.validation_accuracy),
            pct(c.test_accuracy),
            c.union_accuracy.map_or("–".into(), pct),
            c.train_seconds.map_or("–".into(), |t| format!("{t:.0}")),
            if c.fits() {
                "yes".into()
            } else {
                esc(&c.over_budget.join(", "))
            }
        );
    }
    h.push_str("</table>\n");
}

/// The candidates of one family as a series.
fn by_family<'a>(s: &'a Summary, x: impl Fn(&Candidate) -> f64) -> Vec<Series<'a>> {
    let styles: [(Family, &str, Marker, RGBColor); 3] = [
        (
            Family::Trained,
            "trained",
            Marker::Square,
            RGBColor(60, 60, 60),
        ),
        (
            Family::TopDown,
            "top-down",
            Marker::Triangle,
            RGBColor(200, 120, 0),
        ),
        (
            Family::BottomUp,
            "bottom-up",
            Marker::Circle,
            RGBColor(30, 90, 200),
        ),
    ];
    styles
        .into_iter()
        .map(|(f, name, marker, color)| Series {
            name,
            points: s
                .candidates
                .iter()
                .filter(|c| c.family == f)
                .map(|c| (x(c), 100.0 * c.test_accuracy))
                .collect(),
            marker,
            color,
        })
        .filter(|series| !series.points.is_empty())
        .collect()
}

fn figure(h: &mut String, id: &str, svg: anyhow::Result<String>, caption: &str) {
    match svg {
        Ok(svg) => {
            let _ = writeln!(
                h,
                "<figure id=\"{id}\">{svg}<figcaption>{caption}</figcaption></figure>"
            );
        }
        Err(e) => {
            let _ = writeln!(h, "<p id=\"{id}\">No plot: {}.</p>", esc(&e.to_string()));
        }
    }
}

fn plots(h: &mut String, s: &Summary) {
    h.push_str("<h2>Accuracy against cost</h2>\n");
    let latency = scatter_with_limits_svg(
        "int8 test accuracy vs. estimated latency",
        "latency (ms)",
        &by_family(s, |c| c.latency_ms),
        None,
        &[("latency budget", s.budget.latency_ms)],
    );
    figure(
        h,
        "plot-latency",
        latency,
        "Every candidate; the dashed line is the latency budget.",
    );
    let sram = scatter_with_limits_svg(
        "int8 test accuracy vs. peak SRAM",
        "peak SRAM (bytes)",
        &by_family(s, |c| c.peak_sram_bytes as f64),
        None,
        &[
            ("SRAM budget", s.budget.sram_bytes as f64),
            ("board SRAM", s.board.sram_bytes as f64),
        ],
    );
    figure(
        h,
        "plot-sram",
        sram,
        "Every candidate; dashed: the SRAM budget and the board's SRAM.",
    );
}

fn details(h: &mut String, s: &Summary) {
    let d = &s.details;
    h.push_str("<h2>Methods</h2>\n");
    if !d.compress.is_empty() {
        h.push_str("<h3>Compression pipeline</h3>\n<table id=\"compress\"><tr><th>step</th><th>params</th><th>MACs</th><th>val. % (int8)</th><th>flash B</th><th>latency ms</th></tr>\n");
        for r in &d.compress {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.step),
                thousands(r.params),
                thousands(r.macs),
                pct(r.validation_accuracy),
                r.flash_bytes.map_or("–".into(), thousands),
                r.latency_ms.map_or("–".into(), |l| format!("{l:.2}"))
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(dm) = &d.ditmos {
        let _ = write!(
            h,
            "<h3>DiTMoS</h3>\n<p>Routing accuracy (the selector picks a right classifier where one is): {} %.</p>\n<table id=\"ditmos-routing\"><tr><th>classifier</th><th>routed share %</th><th>own test accuracy %</th></tr>\n",
            pct(dm.routing_accuracy)
        );
        for (i, (share, acc)) in dm
            .routed_share
            .iter()
            .zip(&dm.classifier_accuracy)
            .enumerate()
        {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                pct(*share),
                pct(*acc)
            );
        }
        h.push_str("</table>\n<table id=\"ditmos-histogram\"><tr><th>classifiers right</th>");
        for k in 0..dm.correct_histogram.len() {
            let _ = write!(h, "<th>{k}</th>");
        }
        h.push_str("</tr><tr><td>test samples</td>");
        for n in &dm.correct_histogram {
            let _ = write!(h, "<td>{}</td>", thousands(*n));
        }
        h.push_str("</tr></table>\n<table id=\"ditmos-cka\"><tr><th>linear CKA</th>");
        let label = |i: usize| {
            if i == 0 {
                "strong".to_string()
            } else {
                format!("classifier {i}")
            }
        };
        for j in 0..dm.cka.len() {
            let _ = write!(h, "<th>{}</th>", label(j));
        }
        h.push_str("</tr>\n");
        for (i, row) in dm.cka.iter().enumerate() {
            let _ = write!(h, "<tr><td>{}</td>", label(i));
            for v in row {
                let _ = write!(h, "<td>{v:.3}</td>");
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if !d.stitch.is_empty() {
        h.push_str("<h3>SN-Net stitching</h3>\n");
        let points = |frontier: bool| -> Vec<(f64, f64)> {
            d.stitch
                .iter()
                .filter(|r| r.frontier == frontier)
                .filter_map(|r| r.latency_ms.map(|l| (l, 100.0 * r.test_accuracy)))
                .collect()
        };
        let series = [
            Series {
                name: "routes",
                points: points(false),
                marker: Marker::Circle,
                color: RGBColor(150, 150, 150),
            },
            Series {
                name: "validation frontier",
                points: points(true),
                marker: Marker::Square,
                color: RGBColor(30, 90, 200),
            },
        ];
        let series: Vec<Series> = series
            .into_iter()
            .filter(|x| !x.points.is_empty())
            .collect();
        figure(
            h,
            "plot-stitch",
            scatter_svg(
                "SN-Net routes: int8 test accuracy vs. latency",
                "latency (ms)",
                &series,
                None,
            ),
            "Every route of the switchable package; squares: the frontier chosen on validation.",
        );
    }
    if !d.search.is_empty() {
        h.push_str("<h3>Architecture search</h3>\n");
        let trained: Vec<(f64, f64)> = d
            .search
            .iter()
            .filter_map(|t| t.validation_accuracy.map(|a| (t.latency_ms, 100.0 * a)))
            .collect();
        let series = [Series {
            name: "trials (proxy training)",
            points: trained,
            marker: Marker::Circle,
            color: RGBColor(30, 90, 200),
        }];
        figure(
            h,
            "plot-search",
            scatter_with_limits_svg(
                "NAS trials: validation accuracy vs. latency",
                "latency (ms)",
                &series,
                None,
                &[("latency budget", s.budget.latency_ms)],
            ),
            &format!(
                "{} trials, {} over the limits (not trained).",
                d.search.len(),
                d.search
                    .iter()
                    .filter(|t| t.validation_accuracy.is_none())
                    .count()
            ),
        );
    }
}

fn confusion(h: &mut String, s: &Summary) {
    let Some(w) = &s.winner else { return };
    h.push_str("<h2>The winner's confusion matrix</h2>\n");
    let Some(m) = &w.confusion else {
        h.push_str("<p id=\"confusion\">Not recorded for this method (its routes were verified in QEMU in its own stage).</p>\n");
        return;
    };
    h.push_str("<p>Its C package in QEMU on the test split; rows: true class, columns: predicted.</p>\n<table id=\"confusion\"><tr><th></th>");
    for c in &s.dataset.classes {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for (c, row) in s.dataset.classes.iter().zip(m) {
        let _ = write!(h, "<tr><td>{}</td>", esc(c));
        for n in row {
            let _ = write!(h, "<td>{n}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn stages(h: &mut String, s: &Summary) {
    h.push_str("<h2>Stages</h2>\n<table id=\"stages\"><tr><th>stage</th><th>hash</th><th>status</th><th>seconds (this run)</th></tr>\n");
    for st in &s.stages {
        let status = serde_json::to_value(&st.status)
            .ok()
            .and_then(|v| v.get("status").and_then(|x| x.as_str()).map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{:.0}</td></tr>",
            esc(&st.name),
            esc(&st.hash),
            esc(&status),
            st.seconds
        );
    }
    h.push_str("</table>\n");
}
