//! `update.svg`: the share of readers on the new version against time since
//! the update, one line per churn setting, with the 60 s and 99 % marks.

use std::path::Path;

use plotters::prelude::*;

use crate::error::ExperimentError;
use crate::plot::{draw_legend, plot_error, PALETTE};
use crate::update::UpdateRun;

/// Draws the CDF into `path`; `after_s` is the measured time after the update.
pub fn draw(path: &Path, runs: &[UpdateRun], after_s: f64) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (nodes, readers) = runs
        .first()
        .map_or((0, 0), |r| (r.row.nodes, r.row.readers));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Readers on the new version ({nodes} nodes, {readers} readers)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..after_s, 0.0..1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("seconds since the update")
        .y_desc("share of readers whose resolution returned it")
        .draw()
        .map_err(|e| err(&e))?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 0.99), (after_s, 0.99)],
            6,
            4,
            grey.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("99 %, 60 s (target)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    chart
        .draw_series(DashedLineSeries::new(
            vec![(60.0, 0.0), (60.0, 1.05)],
            6,
            4,
            grey.stroke_width(1),
        ))
        .map_err(|e| err(&e))?;
    for (i, run) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut times: Vec<f64> = run.readers.iter().filter_map(|r| r.updated_s).collect();
        times.sort_by(f64::total_cmp);
        let n = run.readers.len().max(1) as f64;
        // A step function from the origin.
        let mut steps = vec![(0.0, 0.0)];
        let mut last = 0.0;
        for (k, &t) in times.iter().enumerate() {
            let share = (k + 1) as f64 / n;
            steps.push((t, last));
            steps.push((t, share));
            last = share;
        }
        steps.push((after_s, last));
        let label = if run.row.churn == "on" {
            format!(
                "churn (median session {:.0} min)",
                run.row.session_median_s / 60.0
            )
        } else {
            "no churn".to_string()
        };
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
