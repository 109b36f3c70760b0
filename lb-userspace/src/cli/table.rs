//! A small aligned-column text table, the building block of every `lbctl` view.
//!
//! Columns are separated by two spaces; numeric columns can be right-aligned. A row
//! may end in a free-form *tail* that is printed after its cells without taking part in
//! column widths (ipvsadm-style service lines between aligned backend lines).

/// One row of a [`Table`]: aligned cells, then an optional unaligned tail.
#[derive(Clone, Debug)]
struct Row {
    cells: Vec<String>,
    tail: Option<String>,
}

/// An aligned-column text table.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    right: Vec<bool>,
    rows: Vec<Row>,
}

const GAP: &str = "  ";

impl Table {
    /// A table whose column `i` is right-aligned when `right[i]` (missing: left).
    pub(crate) fn new(right: &[bool]) -> Self {
        Table {
            right: right.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Append a row of cells.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row { cells, tail: None });
    }

    /// Append a row of cells followed by a free-form tail.
    pub(crate) fn row_with_tail(&mut self, cells: Vec<String>, tail: String) {
        self.rows.push(Row {
            cells,
            tail: Some(tail),
        });
    }

    /// The table as text, one `\n`-terminated line per row, without trailing blanks.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (i, cell) in row.cells.iter().enumerate() {
                let w = cell.chars().count();
                match widths.get_mut(i) {
                    Some(cur) => *cur = (*cur).max(w),
                    None => widths.push(w),
                }
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.cells.iter().enumerate() {
                if i > 0 {
                    line.push_str(GAP);
                }
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                if self.right.get(i).copied().unwrap_or(false) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if let Some(tail) = &row.tail {
                line.push_str(GAP);
                line.push_str(tail);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_keeps_tails_out_of_widths() {
        let mut t = Table::new(&[false, true]);
        t.row(vec!["name".into(), "count".into()]);
        t.row_with_tail(
            vec!["a".into(), "1".into()],
            "a very long tail that must not widen".into(),
        );
        t.row_with_tail(vec!["tail-only".into()], "x".into());
        t.row(vec!["longer-name".into(), "12345".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name         count");
        assert_eq!(
            lines[1],
            "a                1  a very long tail that must not widen"
        );
        assert_eq!(lines[2], "tail-only    x");
        assert_eq!(lines[3], "longer-name  12345");
    }

    #[test]
    fn no_trailing_blanks() {
        let mut t = Table::new(&[]);
        t.row(vec!["a".into(), "".into()]);
        t.row(vec!["bbbb".into(), "cccc".into()]);
        for line in t.render().lines() {
            assert_eq!(line, line.trim_end());
        }
    }
}
