//! `flash_crowd.svg`: the completion-time CDF of every mode at the largest M, and
//! the publisher's upload against M, side by side.

use std::path::Path;

use plotters::prelude::*;

use crate::error::ExperimentError;
use crate::flash_crowd::FlashRun;
use crate::plot::{draw_legend, plot_error, PALETTE};

/// Draws both panels into `path`.
pub fn draw(path: &Path, runs: &[FlashRun]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let mut modes: Vec<&str> = Vec::new();
    for r in runs {
        if !modes.contains(&r.row.mode.as_str()) {
            modes.push(&r.row.mode);
        }
    }
    let largest = runs.iter().map(|r| r.row.requesters).max().unwrap_or(1);
    let root = SVGBackend::new(path, (1300, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(650);

    let t_hi = runs
        .iter()
        .filter(|r| r.row.requesters == largest)
        .flat_map(|r| r.cdf.last().map(|c| c.0))
        .fold(1.0, f64::max)
        * 1.05;
    let mut cdf = ChartBuilder::on(&left)
        .caption(
            format!("Completion time, {largest} requesters"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..t_hi, 0.0..1.0)
        .map_err(|e| err(&e))?;
    cdf.configure_mesh()
        .light_line_style(WHITE)
        .x_desc("seconds from request to verified page")
        .y_desc("share of requesters done")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, mode) in modes.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let Some(run) = runs
            .iter()
            .find(|r| r.row.requesters == largest && r.row.mode == *mode)
        else {
            continue;
        };
        // A step function from the origin.
        let mut steps = vec![(0.0, 0.0)];
        let mut last = 0.0;
        for &(t, share) in &run.cdf {
            steps.push((t, last));
            steps.push((t, share));
            last = share;
        }
        steps.push((t_hi, last));
        cdf.draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(mode.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut cdf, SeriesLabelPosition::LowerRight).map_err(|e| err(&e))?;

    let m_lo = runs.iter().map(|r| r.row.requesters).min().unwrap_or(1);
    let up_hi = runs
        .iter()
        .map(|r| r.row.origin_upload_bytes as f64)
        .fold(1e3, f64::max)
        * 3.0;
    let up_lo = runs
        .iter()
        .map(|r| r.row.origin_upload_bytes as f64)
        .fold(f64::MAX, f64::min)
        .clamp(1e3, up_hi / 10.0)
        / 3.0;
    let mut upload = ChartBuilder::on(&right)
        .caption("Publisher upload against crowd size", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (f64::from(m_lo) / 1.5..f64::from(largest) * 1.5).log_scale(),
            (up_lo..up_hi).log_scale(),
        )
        .map_err(|e| err(&e))?;
    upload
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("requesters M (log scale)")
        .y_desc("publisher upload, MB (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.2}", y / 1e6))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, mode) in modes.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.row.mode == *mode)
            .map(|r| {
                (
                    f64::from(r.row.requesters),
                    (r.row.origin_upload_bytes as f64).max(up_lo),
                )
            })
            .collect();
        upload
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(mode.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        upload
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    draw_legend(&mut upload, SeriesLabelPosition::UpperLeft).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
