//! SVG plots, drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::error::ExperimentError;
use crate::hops::HopsRow;

pub(crate) fn plot_error(path: &Path, e: impl std::fmt::Display) -> ExperimentError {
    ExperimentError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Draws a chart's series legend in the house style (boxed, translucent white).
pub(crate) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// Colours that stay distinct on white and for common colour blindness.
pub(crate) const PALETTE: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// `hops.svg`: mean and p99 hops against N (log axis) per strategy and metric,
/// with the references log2 N (Kademlia) and ½·log2 N (Chord).
pub fn hops(path: &Path, rows: &[HopsRow]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let mut sizes: Vec<u32> = rows.iter().map(|r| r.nodes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = match (sizes.first(), sizes.last()) {
        (Some(&lo), Some(&hi)) => (f64::from(lo), f64::from(hi)),
        _ => (2.0, 4.0),
    };
    let (x_lo, x_hi) = (lo / 1.5, hi * 1.5);
    let y_hi = rows
        .iter()
        .map(|r| r.hops_p99 as f64)
        .chain([x_hi.log2()])
        .fold(1.0, f64::max)
        + 1.0;

    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Lookup hops against network size", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(50)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("nodes N (log scale)")
        .y_desc("hops")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;

    let reference = |f: fn(f64) -> f64| {
        (0..=50).map(move |i| {
            let x = x_lo * (x_hi / x_lo).powf(f64::from(i) / 50.0);
            (x, f(x))
        })
    };
    chart
        .draw_series(LineSeries::new(reference(f64::log2), BLACK.stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("log2 N (Kademlia)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            reference(|x| x.log2() / 2.0),
            grey.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("½·log2 N (Chord)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));

    let mut combos: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.strategy.clone(), r.metric.clone()))
        .collect();
    combos.dedup();
    combos.sort();
    combos.dedup();
    for (i, (strategy, metric)) in combos.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let series: Vec<&HopsRow> = rows
            .iter()
            .filter(|r| &r.strategy == strategy && &r.metric == metric)
            .collect();
        let mean: Vec<(f64, f64)> = series
            .iter()
            .map(|r| (f64::from(r.nodes), r.hops_mean))
            .collect();
        let p99: Vec<(f64, f64)> = series
            .iter()
            .map(|r| (f64::from(r.nodes), r.hops_p99 as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(mean.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{strategy}/{metric} mean"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(mean.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(DashedLineSeries::new(
                p99.clone(),
                6,
                4,
                color.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(format!("{strategy}/{metric} p99 (dashed)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], color));
        chart
            .draw_series(
                p99.iter()
                    .map(|&p| TriangleMarker::new(p, 4, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `scale.svg`: wall time against N, both on log axes, with events/s in the labels.
pub fn scale(path: &Path, rows: &[crate::scale::ScaleRow]) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let x_lo = rows
        .iter()
        .map(|r| f64::from(r.nodes))
        .fold(f64::MAX, f64::min)
        / 1.5;
    // Room on the right for the last point's label.
    let x_hi = rows.iter().map(|r| f64::from(r.nodes)).fold(2.0, f64::max) * 4.0;
    let y_lo = rows
        .iter()
        .map(|r| r.wall_s)
        .fold(f64::MAX, f64::min)
        .max(0.01)
        / 2.0;
    let y_hi = rows.iter().map(|r| r.wall_s).fold(0.02, f64::max) * 2.0;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Simulator wall time against network size",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("nodes N (log scale)")
        .y_desc("wall seconds (log scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 10.0 {
                format!("{y:.0}")
            } else if *y >= 1.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.2}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (f64::from(r.nodes), r.wall_s))
        .collect();
    chart
        .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(rows.iter().map(|r| {
            let p = (f64::from(r.nodes), r.wall_s);
            EmptyElement::at(p)
                + Circle::new((0, 0), 4, BLUE.filled())
                + Text::new(
                    format!(
                        "{:.0}k events/s, {} B/node",
                        r.events_per_s / 1e3,
                        r.bytes_per_node
                    ),
                    (8, -14),
                    ("sans-serif", 13),
                )
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// `adversary.svg`: provider lookup success against the adversarial share,
/// one line per lookup (plain, disjoint), with the 99 % and 90 % bars.
pub fn adversary(
    path: &Path,
    rows: &[crate::adversary::AdversaryRow],
) -> Result<(), ExperimentError> {
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let x_hi = rows
        .iter()
        .map(|r| f64::from(r.adversary_percent))
        .fold(10.0, f64::max);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let nodes = rows.first().map_or(0, |r| r.nodes);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Provider lookups among colluding liars ({nodes} nodes)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_hi, 0.0..1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("adversarial nodes, % (eclipse and fake providers)")
        .y_desc("lookups that found a real provider")
        .draw()
        .map_err(|e| err(&e))?;
    let grey = RGBColor(150, 150, 150);
    for (bar, label) in [(0.99, "99 %"), (0.9, "90 %")] {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, bar), (x_hi, bar)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    let mut lookups: Vec<(String, usize)> = rows
        .iter()
        .map(|r| (r.lookup.clone(), r.disjoint_paths))
        .collect();
    lookups.sort();
    lookups.dedup();
    for (i, (lookup, d)) in lookups.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| &r.lookup == lookup)
            .map(|r| (f64::from(r.adversary_percent), r.success_rate))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{lookup} (d = {d})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
