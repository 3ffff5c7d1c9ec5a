//! stdout is data, stderr is talk. Tables for people, JSON and YAML for programs.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// How to print: the format and whether colour is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub color: bool,
    pub terminal: bool,
}

impl Printer {
    /// Colour only on a terminal, never with `NO_COLOR` set or `--no-color`.
    pub fn new(format: Format, no_color: bool) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Printer { format, color: terminal && !no_color && !no_color_env, terminal }
    }

    /// Prints `value` as JSON/YAML, or the table `table` builds.
    pub fn print<T: Serialize + ?Sized>(
        &self,
        value: &T,
        table: impl FnOnce(&Printer) -> Vec<Table>,
    ) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, value)?;
                writeln!(out)?;
            }
            Format::Yaml => {
                let text = serde_yaml_ng::to_string(value)?;
                out.write_all(text.as_bytes())?;
            }
            Format::Table => {
                for (i, t) in table(self).iter().enumerate() {
                    if i > 0 {
                        writeln!(out)?;
                    }
                    writeln!(out, "{t}")?;
                }
            }
        }
        Ok(())
    }

    /// A table with a header row, boxed on a terminal and plain columns otherwise.
    pub fn table<I, S>(&self, header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<Cell>,
    {
        let mut table = Table::new();
        if self.terminal {
            table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            table.load_preset(presets::NOTHING);
        }
        if !self.color {
            table.force_no_tty();
        }
        table.set_header(header);
        table
    }

    /// A cell coloured by meaning when colour is on.
    pub fn status_cell(&self, text: &str) -> Cell {
        let cell = Cell::new(text);
        if !self.color {
            return cell;
        }
        match text {
            "up" | "active" | "yes" | "applied" | "created" | "updated" => cell.fg(Color::Green),
            "degraded" | "paused" | "pending" => cell.fg(Color::Yellow),
            "down" | "disabled" | "no" | "mismatch" => cell.fg(Color::Red),
            _ => cell,
        }
    }
}

/// A value or the dash people read as "absent" (never a made-up 0).
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A message for people, on stderr.
pub fn note(message: impl std::fmt::Display) {
    eprintln!("{message}");
}
