//! How commands print what they list: an aligned table for people, JSON or YAML for scripts.

use std::io::{self, Write};

use serde::Serialize;

/// Output format of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// JSON, one document.
    Json,
    /// YAML, one document.
    Yaml,
}

/// Prints a value as JSON (pretty) or YAML.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> io::Result<()> {
    let text = match format {
        OutputFormat::Yaml => serde_saphyr::to_string(value).map_err(io::Error::other)?,
        _ => {
            let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
            text.push('\n');
            text
        }
    };
    io::stdout().lock().write_all(text.as_bytes())
}

/// A table of text cells with a header row, printed with aligned columns.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(headings: &[&str]) -> Self {
        Self {
            rows: vec![headings.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row; missing cells print empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether only the heading is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() == 1
    }

    /// The table as text, columns separated by at least three spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|row| row.get(c).map_or(0, |cell| cell.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, width) in widths.iter().enumerate() {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                if c + 1 == columns {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}   "));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    /// Prints the table to stdout.
    pub fn print(&self) -> io::Result<()> {
        io::stdout().lock().write_all(self.render().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let mut table = Table::new(&["DEPLOYMENT", "PHASE"]);
        table.row(vec!["ingestor/dev".into(), "Running".into()]);
        table.row(vec!["a/b".into(), "".into()]);
        assert_eq!(
            table.render(),
            "DEPLOYMENT     PHASE\ningestor/dev   Running\na/b\n"
        );
    }
}
