//! Where results go: `DIR/<name>.csv`, `DIR/<name>.svg` and `DIR/<name>.json`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::ExperimentError;

/// The results directory of one invocation.
#[derive(Clone, Debug)]
pub struct Output {
    dir: PathBuf,
}

impl Output {
    /// Creates `dir` if needed.
    pub fn new(dir: &Path) -> Result<Self, ExperimentError> {
        fs::create_dir_all(dir).map_err(|source| ExperimentError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Output {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of `DIR/<name>.<ext>`.
    pub fn path(&self, name: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{name}.{ext}"))
    }

    /// Writes `rows` to `DIR/<name>.csv`, with a header from the row's field names.
    pub fn csv<T: Serialize>(&self, name: &str, rows: &[T]) -> Result<PathBuf, ExperimentError> {
        let path = self.path(name, "csv");
        let csv_error = |source| ExperimentError::Csv {
            path: path.clone(),
            source,
        };
        let mut w = csv::Writer::from_path(&path).map_err(csv_error)?;
        for row in rows {
            w.serialize(row).map_err(csv_error)?;
        }
        w.flush().map_err(|source| ExperimentError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Writes an experiment's three files (CSV from `rows`, SVG by `plot`, JSON from
    /// `record`), then prints `table` and where the files went on stdout
    /// (not for a point of a sweep: the sweep prints one table for all).
    pub fn publish<R: Serialize, J: Serialize>(
        &self,
        name: &str,
        rows: &[R],
        plot: impl FnOnce(&Path) -> Result<(), ExperimentError>,
        record: &J,
        table: &str,
    ) -> Result<(), ExperimentError> {
        let csv = self.csv(name, rows)?;
        let svg = self.path(name, "svg");
        plot(&svg)?;
        let json = self.json(name, record)?;
        if crate::progress::in_sweep() {
            return Ok(());
        }
        print!("{table}");
        println!(
            "wrote {}, {}, {}",
            csv.display(),
            svg.display(),
            json.display()
        );
        Ok(())
    }

    /// Writes `DIR/<name>.timeseries.csv`: the `labels` columns (which run, which
    /// phase) and then [`distroweb_sim::timeseries::COLUMNS`], one line per
    /// interval of each run, in the order given.
    pub fn timeseries<'a>(
        &self,
        name: &str,
        labels: &[&str],
        rows: impl IntoIterator<Item = (Vec<String>, &'a distroweb_sim::timeseries::Row)>,
    ) -> Result<PathBuf, ExperimentError> {
        let path = self.path(&format!("{name}.timeseries"), "csv");
        let csv_error = |source| ExperimentError::Csv {
            path: path.clone(),
            source,
        };
        let mut w = csv::Writer::from_path(&path).map_err(csv_error)?;
        w.write_record(distroweb_sim::timeseries::csv_header(labels))
            .map_err(csv_error)?;
        for (mut cells, row) in rows {
            cells.extend(row.csv_fields());
            w.write_record(&cells).map_err(csv_error)?;
        }
        w.flush().map_err(|source| ExperimentError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Writes `value` as pretty JSON to `DIR/<name>.json`.
    pub fn json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf, ExperimentError> {
        let path = self.path(name, "json");
        let mut text =
            serde_json::to_string_pretty(value).map_err(|source| ExperimentError::Json {
                path: path.clone(),
                source,
            })?;
        text.push('\n');
        fs::write(&path, text).map_err(|source| ExperimentError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}
