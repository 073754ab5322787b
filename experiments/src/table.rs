//! A plain, aligned text table for the terminal.

/// Formats rows under a header, each column as wide as its widest cell; numbers
/// (cells starting with a digit) are right-aligned.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| {
                if c.starts_with(|ch: char| ch.is_ascii_digit()) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    out += &line(
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = render(
            &["nodes", "strategy"],
            &[
                vec!["100".into(), "iterative".into()],
                vec!["10000".into(), "recursive".into()],
            ],
        );
        assert_eq!(
            t,
            "nodes  strategy\n-----  ---------\n  100  iterative\n10000  recursive\n"
        );
    }
}
