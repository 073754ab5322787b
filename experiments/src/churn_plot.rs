//! `churn.svg`: success rate and availability, and lookup latency, against median
//! session time; then latency against maintenance bandwidth (the PVC view).
//! `churn.timeseries.svg`: success and p99 latency over each run's time.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use distroweb_sim::timeseries::Row;

use crate::churn::{ChurnRow, ChurnSeries};
use crate::error::ExperimentError;
use crate::plot::{draw_legend, plot_error, PALETTE};

/// One named line of a panel.
type Series = (&'static str, Vec<(f64, f64)>);

/// Draws the three panels into `path`.
pub fn draw(path: &Path, rows: &[ChurnRow]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = SVGBackend::new(path, (1500, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 3));
    let by_median = |f: fn(&ChurnRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter()
            .map(|r| (r.session_median_s / 60.0, f(r)))
            .collect()
    };
    panel(
        &panels[0],
        "Lookups and content under churn",
        "median session, minutes (log scale)",
        "share",
        &[
            ("lookup success rate", by_median(|r| r.success_rate)),
            (
                "content availability",
                by_median(|r| r.content_availability),
            ),
        ],
    )
    .map_err(|e| err(&e))?;
    panel(
        &panels[1],
        "Lookup latency under churn",
        "median session, minutes (log scale)",
        "ms",
        &[
            ("p50", by_median(|r| r.latency_ms_p50)),
            ("p99", by_median(|r| r.latency_ms_p99)),
        ],
    )
    .map_err(|e| err(&e))?;
    let mut by_cost: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.maintenance_bytes_per_node_s, r.latency_ms_p50))
        .collect();
    by_cost.sort_by(|a, b| a.0.total_cmp(&b.0));
    panel(
        &panels[2],
        "Latency against maintenance cost (PVC)",
        "maintenance bytes per node per second (log scale)",
        "p50 lookup latency, ms",
        &[("p50 latency", by_cost)],
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A line chart with a log x axis; the y axis starts at 0 (`share` panels end at 1).
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let x_lo = xs.clone().fold(f64::MAX, f64::min).clamp(1e-3, 1e12) / 1.5;
    let x_hi = xs.fold(x_lo * 2.0, f64::max) * 1.5;
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_hi = if y_desc == "share" {
        1.05
    } else {
        y_max.max(1.0) * 1.15
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|x| e(&x))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|x| e(&x))?;
    Ok(())
}

/// `churn.timeseries.svg`: lookup success rate and p99 latency per interval
/// against virtual time, one line per median session.
pub fn timeseries(path: &Path, series: &[ChurnSeries]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = SVGBackend::new(path, (1400, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let minutes = |t: distroweb_protocol::Time| t.as_micros() as f64 / 60e6;
    // Only intervals in which lookups ended (success) or succeeded (latency).
    let lines = |f: fn(&Row) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        series
            .iter()
            .map(|s| {
                let points = s
                    .rows
                    .iter()
                    .filter_map(|(_, r)| f(r).map(|y| (minutes(r.start), y)))
                    .collect();
                (
                    format!("median session {}", median_label(s.session_median_s)),
                    points,
                )
            })
            .collect()
    };
    let success = lines(|r| {
        let n = r.lookups_finished();
        (n > 0).then(|| r.lookups_succeeded as f64 / n as f64)
    });
    let p99 = lines(|r| (r.lookups_succeeded > 0).then(|| r.latency_us_p99 as f64 / 1e3));
    over_time(
        &panels[0],
        "Provider lookup success per interval",
        "share of lookups that found a real provider",
        &success,
        Some(1.01),
    )
    .map_err(|e| err(&e))?;
    over_time(
        &panels[1],
        "p99 lookup latency per interval",
        "ms (successful lookups)",
        &p99,
        None,
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `84` s as "1.4 min", `3600` as "60 min".
fn median_label(s: f64) -> String {
    let m = s / 60.0;
    if (m - m.round()).abs() < 1e-9 {
        format!("{m:.0} min")
    } else {
        format!("{m:.1} min")
    }
}

/// A line chart against virtual minutes. With `y_hi` (a share) the y axis
/// runs from a little below the smallest value to `y_hi`, else from 0 to a
/// little above the largest value.
fn over_time(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
    y_hi: Option<f64>,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let points = || lines.iter().flat_map(|l| l.1.iter());
    let x_hi = points().map(|p| p.0).fold(1.0, f64::max) * 1.02;
    let (y_lo, y_hi, decimals) = match y_hi {
        Some(hi) => {
            let lo = points().map(|p| p.1).fold(hi, f64::min);
            ((lo * 20.0).floor() / 20.0 - 0.05, hi, 2)
        }
        None => (0.0, points().map(|p| p.1).fold(1.0, f64::max) * 1.1, 0),
    };
    let y_lo = y_lo.clamp(0.0, y_hi);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_hi, y_lo..y_hi)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("virtual time, minutes from the first join")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(1)))
            .map_err(|x| e(&x))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|x| e(&x))?;
    Ok(())
}
