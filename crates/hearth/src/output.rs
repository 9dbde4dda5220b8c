//! Printing for people and for scripts: aligned tables (coloured only on a terminal), JSON,
//! and warnings on stderr.
//!
//! Everything for stdout goes through `write_out`, never `print!`: Rust ignores SIGPIPE, so
//! `print!` panics once the reader is gone (`hearth catalog | head`), while `write_out` turns
//! that into `StdoutClosed`, which `main` answers with a quiet exit 0.

use std::io::{ErrorKind, IsTerminal, Write};

use serde::Serialize;

/// Stdout's reader went away: nobody is left to read the rest, which is not a failure.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

pub(crate) fn write_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` through `write_out`; use as `outln!(…)?`.
macro_rules! outln {
    () => {
        $crate::output::write_out("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
}

impl Tone {
    fn ansi(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("31"),
            Tone::Dim => Some("2"),
        }
    }
}

pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    pub(crate) fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<(String, Tone)>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self, color: bool) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|(t, _)| t.chars().count())
                .chain([self.headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let mut out = String::new();
        let line = |cells: Vec<(&str, Tone)>, out: &mut String| {
            let last = cells.len().saturating_sub(1);
            for (i, (text, tone)) in cells.into_iter().enumerate() {
                let pad = if i == last {
                    0
                } else {
                    widths[i] - text.chars().count() + 2
                };
                match (color, tone.ansi()) {
                    (true, Some(code)) => out.push_str(&format!("\x1b[{code}m{text}\x1b[0m")),
                    _ => out.push_str(text),
                }
                out.extend(std::iter::repeat_n(' ', pad));
            }
            out.push('\n');
        };
        let header_tone = if color { Tone::Dim } else { Tone::Plain };
        line(
            self.headers.iter().map(|h| (*h, header_tone)).collect(),
            &mut out,
        );
        for row in &self.rows {
            line(
                row.iter().map(|(t, tone)| (t.as_str(), *tone)).collect(),
                &mut out,
            );
        }
        out
    }

    pub(crate) fn print(&self) -> anyhow::Result<()> {
        write_out(&self.render(color_enabled()))
    }
}

/// Colour only for a person at a terminal, and never when NO_COLOR is set.
pub(crate) fn color_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn plain(s: impl Into<String>) -> (String, Tone) {
    (s.into(), Tone::Plain)
}

pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)
}

/// Prints the `warnings` array of an API answer to stderr.
pub(crate) fn print_warnings(answer: &serde_json::Value) {
    for w in answer["warnings"].as_array().into_iter().flatten() {
        if let Some(text) = w.as_str() {
            eprintln!("warning: {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_colour_is_optional() {
        let mut t = Table::new(vec!["A", "LONG HEADER", "C"]);
        t.row(vec![plain("xyz"), ("1".into(), Tone::Good), plain("end")]);
        let text = t.render(false);
        assert_eq!(text, "A    LONG HEADER  C\nxyz  1            end\n");
        assert!(!text.contains('\x1b'));
        assert!(t.render(true).contains("\x1b[32m1\x1b[0m"));
    }
}
