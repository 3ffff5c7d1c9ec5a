//! stdout is data, stderr is talk. Tables for people, JSON and YAML for programs.
//!
//! Everything printed for people goes through [`terminal_safe`] (tables, charts, notes and error
//! messages): text from servers and from the database may hold escape sequences, and a raw
//! `ESC ] 0 ; … BEL` retitles the operator's terminal. JSON and YAML escape control characters
//! themselves.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::geo::TargetFacts;
use crate::probe::ProbeResult;

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

/// Writing JSON or YAML to stdout fails only as its writer does (a closed pipe, a full disk).
impl crate::error::Coded for serde_json::Error {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
}

impl crate::error::Coded for serde_yaml_ng::Error {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
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
    ) -> crate::error::Result<()> {
        // Buffered: stdout flushes at every newline, and a pretty JSON answer has one per field
        // (a day's report: half a million lines, as many write calls).
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
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
                    // With colour on, the table's own colour codes are the only escapes kept.
                    let text = t.to_string();
                    let text = if self.color { escape_controls(&text, true) } else { terminal_safe(&text) };
                    writeln!(out, "{text}")?;
                }
            }
        }
        out.flush()?;
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
            "up" | "passed" | "active" | "yes" | "applied" | "created" | "updated" => cell.fg(Color::Green),
            "degraded" | "paused" | "pending" => cell.fg(Color::Yellow),
            "down" | "failed" | "disabled" | "no" | "mismatch" => cell.fg(Color::Red),
            _ => cell,
        }
    }
}

/// A value or the dash people read as "absent" (never a made-up 0).
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Milliseconds with the precision that matters: sub-millisecond times keep three decimals.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.3} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// The phase table (duration and cumulative time of each phase) and the facts.
pub fn result_tables(p: &Printer, r: &ProbeResult) -> Vec<Table> {
    let mut phases = p.table(["PHASE", "TIME", "CUMULATIVE"]);
    let t = r.timeline.as_ref();
    let rows = [
        ("dns", r.phases.dns_ms, t.and_then(|t| t.namelookup_ms)),
        ("connect", r.phases.connect_ms, t.and_then(|t| t.connect_ms)),
        ("tls", r.phases.tls_ms, t.and_then(|t| t.tls_ms)),
        ("first byte", r.phases.first_byte_ms, t.and_then(|t| t.first_byte_ms)),
        ("total", Some(r.phases.total_ms), Some(r.phases.total_ms)),
    ];
    for (name, duration, cumulative) in rows {
        phases.add_row([name.to_string(), ms(duration), ms(cumulative)]);
    }

    let mut facts = p.table(["FACT", "VALUE"]);
    let state = if r.up { "up" } else { "down" };
    facts.add_row(vec!["result".into(), p.status_cell(state)]);
    facts.add_row(["target".to_string(), r.target.clone()]);
    let address = match (&r.resolved_address, &r.ip_family) {
        (Some(ip), Some(family)) => format!("{ip} ({family})"),
        (ip, _) => or_dash(ip.as_ref()),
    };
    facts.add_row(["address".to_string(), address]);
    if let Some(http) = &r.http {
        facts.add_row(["status".to_string(), or_dash(http.status)]);
        facts.add_row(["http version".to_string(), or_dash(http.version.as_ref())]);
        let size = match (&http.content_encoding, http.decoded_size) {
            (Some(coding), Some(decoded)) => format!("{} bytes {coding}, {decoded} bytes decoded", http.response_size),
            _ => format!("{} bytes", http.response_size),
        };
        facts.add_row(["response size".to_string(), size]);
        facts.add_row(["redirects".to_string(), http.redirects.to_string()]);
        facts.add_row([
            "certificate expires".to_string(),
            or_dash(http.cert_expires_at.map(|t| t.format("%Y-%m-%d %H:%M UTC"))),
        ]);
        if let Some(cdn) = &http.cdn {
            facts.add_row(["cdn".to_string(), format!("{:?}", cdn)]);
        }
    }
    if let Some(ping) = &r.ping {
        facts.add_row([
            "packets".to_string(),
            format!("{} sent, {} received ({:.0}% loss)", ping.sent, ping.received, ping.loss_pct),
        ]);
        facts.add_row([
            "rtt min/avg/max".to_string(),
            format!("{} / {} / {}", ms(ping.min_ms), ms(ping.avg_ms), ms(ping.max_ms)),
        ]);
    }
    if let Some(dns) = &r.dns {
        facts.add_row(["rcode".to_string(), or_dash(dns.rcode.as_ref())]);
        facts
            .add_row(["answers".to_string(), if dns.answers.is_empty() { "-".into() } else { dns.answers.join(", ") }]);
        facts.add_row(["resolver".to_string(), or_dash(dns.resolver.as_ref())]);
    }
    if let Some(failure) = &r.failure {
        facts.add_row(["failure".to_string(), format!("{}: {}", failure.kind, failure.message)]);
    }
    let mut tables = vec![phases, facts];
    if !r.per_address.is_empty() {
        let mut per = p.table(["ADDRESS", "RESULT", "CONNECT", "TLS", "FIRST BYTE", "TOTAL", "FAILURE"]);
        for a in &r.per_address {
            per.add_row(vec![
                a.address.to_string().into(),
                p.status_cell(if a.up { "up" } else { "down" }),
                ms(a.phases.connect_ms).into(),
                ms(a.phases.tls_ms).into(),
                ms(a.phases.first_byte_ms).into(),
                ms(Some(a.phases.total_ms)).into(),
                or_dash(a.failure.as_ref()).into(),
            ]);
        }
        tables.push(per);
    }
    tables
}

/// A check's result and, when GeoIP databases are configured, where its
/// address is (`target_facts`: null when no database holds it).
#[derive(Debug, Serialize)]
pub struct Located<'a> {
    #[serde(flatten)]
    pub result: &'a ProbeResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_facts: Option<Option<&'a TargetFacts>>,
    /// The route traced with the check, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a crate::probe::trace::Route>,
}

impl<'a> Located<'a> {
    /// `target` is `None` when no database is configured, `Some(None)` when none holds the address.
    pub fn new(result: &'a ProbeResult, geo_configured: bool, target: Option<&'a TargetFacts>) -> Self {
        Located { result, target_facts: geo_configured.then_some(target), route: None }
    }

    pub fn with_route(self, route: Option<&'a crate::probe::trace::Route>) -> Self {
        Located { route, ..self }
    }
}

/// [`result_tables`] with the target facts added to the facts table.
pub fn located_tables(p: &Printer, l: &Located) -> Vec<Table> {
    let mut tables = result_tables(p, l.result);
    if let Some(target) = l.target_facts {
        target_rows(&mut tables[1], target);
    }
    if let Some(route) = l.route {
        tables.extend(route_tables(p, route));
    }
    tables
}

fn target_rows(facts: &mut Table, target: Option<&TargetFacts>) {
    match target {
        None => {
            facts.add_row(["location".to_string(), "- (no GeoIP database holds this address)".to_string()]);
        }
        Some(t) => {
            facts.add_row(["country".to_string(), or_dash(t.country.as_ref())]);
            facts.add_row(["city".to_string(), or_dash(t.city.as_ref())]);
            let coordinates = match (t.latitude, t.longitude) {
                (Some(lat), Some(lon)) => format!("{lat:.4}, {lon:.4}"),
                _ => "-".into(),
            };
            facts.add_row(["coordinates".to_string(), coordinates]);
            facts.add_row(["asn".to_string(), or_dash(t.asn.map(|n| format!("AS{n}")))]);
            facts.add_row(["organisation".to_string(), or_dash(t.org.as_ref())]);
        }
    }
}

/// A trace's hops as `traceroute` numbers them (`*` for a probe without an
/// answer), and a summary line.
pub fn route_tables(p: &Printer, route: &crate::probe::trace::Route) -> Vec<Table> {
    let mut hops = p.table(["HOP", "ADDRESS", "RTTS", "ASN"]);
    for hop in &route.hops {
        let rtts: Vec<String> =
            hop.rtts_ms.iter().map(|r| r.map_or_else(|| "*".to_string(), |v| ms(Some(v)))).collect();
        hops.add_row([
            hop.ttl.to_string(),
            or_dash(hop.address.as_ref()),
            rtts.join("  "),
            or_dash(hop.asn.map(|n| format!("AS{n}"))),
        ]);
    }
    let mut facts = p.table(["FACT", "VALUE"]);
    facts.add_row(vec!["result".into(), p.status_cell(if route.reached { "up" } else { "down" })]);
    facts.add_row(["target".to_string(), route.target.clone()]);
    facts.add_row(["address".to_string(), or_dash(route.address.as_ref())]);
    facts.add_row(["hop count".to_string(), or_dash(route.hop_count)]);
    facts.add_row(["probes sent".to_string(), route.probes_sent.to_string()]);
    facts.add_row(["total".to_string(), ms(Some(route.total_ms))]);
    if let Some(failure) = &route.failure {
        facts.add_row(["failure".to_string(), failure.to_string()]);
    }
    vec![hops, facts]
}

/// A message for people, on stderr.
pub fn note(message: impl std::fmt::Display) {
    eprintln!("{}", terminal_safe(&message.to_string()));
}

/// `text` with every control character (C0, DEL, C1) except newline and tab, and every
/// bidirectional override, written as a visible escape (`\u{1b}`), so it cannot drive the terminal.
pub fn terminal_safe(text: &str) -> String {
    escape_controls(text, false)
}

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// [`terminal_safe`], optionally keeping well-formed colour codes (`ESC [ digits ; … m`).
fn escape_controls(text: &str, keep_colours: bool) -> String {
    escape_where(text, keep_colours, is_unsafe)
}

/// `text` with every character `escape` picks written as a visible escape.
fn escape_where(text: &str, keep_colours: bool, escape: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if keep_colours && c == '\u{1b}' {
            if let Some(len) = colour_code_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The agent's and the commands' log lines in the text format (`tracing`'s formatter on stderr),
/// passed through [`terminal_safe`]'s rule: a field holding text from a target, a server, the
/// database or an error message cannot drive the operator's terminal. Newlines inside a line are
/// escaped too, so such text cannot forge a log line either. With colour on, the formatter's own
/// colour codes are kept (and a hostile one can only colour). JSON lines escape by themselves.
pub struct SafeLog<M> {
    make: M,
    colour: bool,
}

impl<M> SafeLog<M> {
    pub fn new(make: M, colour: bool) -> Self {
        SafeLog { make, colour }
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for SafeLog<M> {
    type Writer = SafeLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SafeLine { inner: self.make.make_writer(), colour: self.colour }
    }
}

/// One formatted event on its way out (the formatter writes each event whole, in one call).
pub struct SafeLine<W> {
    inner: W,
    colour: bool,
}

impl<W: Write> Write for SafeLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (line, end) = text.strip_suffix('\n').map_or((&*text, ""), |line| (line, "\n"));
        let safe = escape_where(line, self.colour, |c| is_unsafe(c) || c == '\n');
        self.inner.write_all(safe.as_bytes())?;
        self.inner.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The length of the SGR sequence `text` starts with, if it is one.
fn colour_code_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\u{1b}[")?;
    let params = body.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
    body[params..].starts_with('m').then_some(2 + params + 1)
}

/// A synthetic flow: one row per step (its outcome, time, status and phases, or what it saw
/// in the browser), then the total and the first failure.
pub fn flow_tables(p: &Printer, flow: &crate::synthetic::FlowResult) -> Vec<Table> {
    let mut steps =
        p.table(["STEP", "KIND", "OUTCOME", "TIME", "STATUS", "DNS", "CONNECT", "TLS", "FIRST BYTE", "NOTES"]);
    for s in &flow.steps {
        let phases = s.phases.as_ref();
        let mut notes = Vec::new();
        if let Some(f) = &s.failure {
            notes.push(f.to_string());
        }
        if !s.pages.is_empty() {
            let loads: Vec<String> = s.pages.iter().map(|pg| format!("load {}", ms(pg.load_ms))).collect();
            notes.push(format!("{} page(s): {}", s.pages.len(), loads.join(", ")));
        }
        if let Some(n) = s.console_errors.filter(|n| *n > 0) {
            notes.push(format!("{n} console error(s)"));
        }
        if let Some(n) = s.failed_requests.filter(|n| *n > 0) {
            notes.push(format!("{n} failed request(s)"));
        }
        if let Some(shot) = &s.screenshot {
            notes.push(format!("screenshot: {shot}"));
        }
        steps.add_row(vec![
            Cell::new(&s.name),
            Cell::new(&s.kind),
            p.status_cell(s.outcome.as_str()),
            Cell::new(ms(s.duration_ms)),
            Cell::new(or_dash(s.status)),
            Cell::new(ms(phases.and_then(|p| p.dns_ms))),
            Cell::new(ms(phases.and_then(|p| p.connect_ms))),
            Cell::new(ms(phases.and_then(|p| p.tls_ms))),
            Cell::new(ms(phases.and_then(|p| p.first_byte_ms))),
            Cell::new(if notes.is_empty() { "-".to_string() } else { notes.join("; ") }),
        ]);
    }
    let mut summary = p.table(["FIELD", "VALUE"]);
    summary.add_row(vec![Cell::new("result"), p.status_cell(if flow.up { "up" } else { "down" })]);
    summary.add_row(vec![Cell::new("total"), Cell::new(ms(Some(flow.total_ms)))]);
    summary.add_row(vec![Cell::new("failed step"), Cell::new(or_dash(flow.failed_step.as_ref()))]);
    summary.add_row(vec![Cell::new("failure"), Cell::new(or_dash(flow.failure.as_ref()))]);
    vec![steps, summary]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Captured;

    #[test]
    fn control_characters_are_escaped_and_text_kept() {
        let hostile = "eu\u{1b}]0;owned\u{7}west\u{9b}2J\u{202e}";
        let safe = terminal_safe(hostile);
        assert_eq!(safe, "eu\\u{1b}]0;owned\\u{7}west\\u{9b}2J\\u{202e}");
        assert!(!safe.chars().any(is_unsafe));
        assert_eq!(terminal_safe("a\tb\nc ünïcødé"), "a\tb\nc ünïcødé");
    }

    #[test]
    fn colour_codes_survive_only_when_asked_and_well_formed() {
        let coloured = "\u{1b}[38;5;10mup\u{1b}[0m \u{1b}]0;x\u{7}";
        assert_eq!(escape_controls(coloured, true), "\u{1b}[38;5;10mup\u{1b}[0m \\u{1b}]0;x\\u{7}");
        assert!(!escape_controls(coloured, false).contains('\u{1b}'));
    }

    /// What an error from a server puts in a log line stays text: no escape sequence reaches the
    /// terminal and no newline starts a forged line, with colour on or off.
    #[test]
    fn log_lines_escape_control_characters_in_fields_and_messages() {
        for colour in [false, true] {
            let captured = Captured::default();
            let sink = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(SafeLog::new(move || sink.clone(), colour))
                .with_ansi(colour)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                let error = "refused\u{1b}]0;owned\u{7}\n2026-01-01T00:00:00Z ERROR forged";
                tracing::warn!(error = %error, target_host = "eu\u{9b}2J", "job \u{1b}[2Jfailed");
            });
            let out = captured.text();
            assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
            assert!(out.ends_with('\n'), "{out:?}");
            assert!(out.contains("\\u{1b}]0;owned\\u{7}\\u{a}2026"), "{out:?}");
            // tracing escapes the message's own escapes; the fields' values are left to us.
            assert!(out.contains("\\u{9b}2J") && out.contains("[2Jfailed"), "{out:?}");
            assert!(!out.contains('\u{7}') && !out.contains('\u{9b}'), "{out:?}");
            // Only the formatter's own colour codes are left, and only when colour is on.
            let kept = out.matches('\u{1b}').count();
            assert_eq!(kept == 0, !colour, "{out:?}");
            assert!(!out.contains("\u{1b}]") && !out.contains("\u{1b}[2J"), "{out:?}");
        }
    }

    #[test]
    fn tables_print_hostile_cells_escaped() {
        let p = Printer { format: Format::Table, color: false, terminal: false };
        let mut table = p.table(["NAME"]);
        table.add_row(["\u{1b}]0;owned\u{7}"]);
        assert!(!terminal_safe(&table.to_string()).contains('\u{1b}'));
    }
}
