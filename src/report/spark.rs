//! A one-line chart of average response time per bucket, for terminals.
//! Colour is the caller's business: each cell says what it shows.

use super::Bucket;

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// A bucket without any check.
pub const NO_DATA: char = '·';
/// A bucket whose checks all failed: there is no response time to draw.
pub const ALL_FAILED: char = '×';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub glyph: char,
    /// At least one check in the bucket failed.
    pub failures: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    pub cells: Vec<Cell>,
    /// Lowest and highest bucket average drawn; `None` when no bucket had a successful check.
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Sparkline {
    pub fn any_failures(&self) -> bool {
        self.cells.iter().any(|c| c.failures)
    }
}

/// Scales bucket averages between their minimum (▁) and maximum (█); a flat
/// series sits in the middle.
pub fn sparkline(series: &[Bucket]) -> Sparkline {
    let values = || series.iter().filter_map(|b| b.avg_ms);
    let min_ms = values().reduce(f64::min);
    let max_ms = values().reduce(f64::max);
    let cells = series
        .iter()
        .map(|b| {
            let glyph = match (b.avg_ms, min_ms, max_ms) {
                (Some(v), Some(lo), Some(hi)) if hi > lo => {
                    LEVELS[(((v - lo) / (hi - lo)) * (LEVELS.len() - 1) as f64).round() as usize]
                }
                (Some(_), _, _) => LEVELS[LEVELS.len() / 2 - 1],
                (None, _, _) if b.checks == 0 => NO_DATA,
                (None, _, _) => ALL_FAILED,
            };
            Cell { glyph, failures: b.failed() > 0 }
        })
        .collect();
    Sparkline { cells, min_ms, max_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn bucket(checks: i64, successful: i64, avg_ms: Option<f64>) -> Bucket {
        Bucket { start: DateTime::UNIX_EPOCH, checks, successful, avg_ms }
    }

    fn glyphs(s: &Sparkline) -> String {
        s.cells.iter().map(|c| c.glyph).collect()
    }

    #[test]
    fn scales_between_min_and_max_and_marks_gaps_and_failures() {
        let s = sparkline(&[
            bucket(2, 2, Some(10.0)),
            bucket(0, 0, None),
            bucket(3, 2, Some(80.0)),
            bucket(1, 0, None),
            bucket(1, 1, Some(45.0)),
        ]);
        assert_eq!(glyphs(&s), "▁·█×▅");
        assert_eq!((s.min_ms, s.max_ms), (Some(10.0), Some(80.0)));
        let failures: Vec<bool> = s.cells.iter().map(|c| c.failures).collect();
        assert_eq!(failures, [false, false, true, true, false]);
    }

    #[test]
    fn flat_and_empty_series() {
        assert_eq!(glyphs(&sparkline(&[bucket(1, 1, Some(5.0)), bucket(1, 1, Some(5.0))])), "▄▄");
        let empty = sparkline(&[bucket(0, 0, None), bucket(0, 0, None)]);
        assert_eq!(glyphs(&empty), "··");
        assert_eq!(empty.min_ms, None);
        assert!(!empty.any_failures());
    }
}
