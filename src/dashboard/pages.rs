//! The pages: Tera templates compiled into the binary, rendered with autoescaping on (every text
//! from a target, a monitor's name or an error message is escaped; only the charts that
//! `report::html` draws, which escape their own text, are inserted as they are).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use tera::Tera;

use super::data::{MonitorPage, Overview, Source};
use super::range::PRESETS;
use super::server::REFRESH_SECONDS;
use super::statuspage::PublicPage;
use super::DashboardError;

const TEMPLATES: [(&str, &str); 7] = [
    ("layout.html", include_str!("../../templates/dashboard/layout.html")),
    ("range.html", include_str!("../../templates/dashboard/range.html")),
    ("login.html", include_str!("../../templates/dashboard/login.html")),
    ("overview.html", include_str!("../../templates/dashboard/overview.html")),
    ("monitor.html", include_str!("../../templates/dashboard/monitor.html")),
    ("status.html", include_str!("../../templates/dashboard/status.html")),
    ("public.html", include_str!("../../templates/dashboard/public.html")),
];

/// How often a public status page fetches itself again, in seconds.
const STATUS_REFRESH_SECONDS: u32 = 60;

const SCRIPT: &str = include_str!("../../templates/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../templates/dashboard/dashboard.css");

/// The script and the style sheet (the report's, and the dashboard's additions).
pub fn asset(name: &str) -> Option<(&'static str, String)> {
    match name {
        "dashboard.js" => Some(("text/javascript; charset=utf-8", SCRIPT.to_string())),
        "dashboard.css" => {
            Some(("text/css; charset=utf-8", format!("{}\n{DASHBOARD_CSS}", crate::report::html::STYLE)))
        }
        _ => None,
    }
}

pub struct Pages {
    tera: Tera,
}

#[derive(Serialize)]
struct Preset {
    name: &'static str,
    label: &'static str,
}

fn presets() -> Vec<Preset> {
    PRESETS.iter().map(|(name, label, _)| Preset { name, label }).collect()
}

impl Pages {
    pub fn new() -> Result<Self, DashboardError> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES).map_err(template_error)?;
        tera.register_filter("ms", |v: &Value, _: &HashMap<String, Value>| {
            Ok(Value::String(v.as_f64().map_or_else(|| "-".into(), crate::report::html::format_ms)))
        });
        tera.register_filter("pct", |v: &Value, _: &HashMap<String, Value>| {
            Ok(Value::String(v.as_f64().map_or_else(|| "-".into(), |p| format!("{p:.2}%"))))
        });
        tera.register_filter("when", |v: &Value, _: &HashMap<String, Value>| {
            let shown = v
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(|| "-".into(), |t| t.to_utc().format("%Y-%m-%d %H:%M:%S UTC").to_string());
            Ok(Value::String(shown))
        });
        // What a `datetime-local` input holds: minutes, no zone (the form says UTC).
        tera.register_filter("local", |v: &Value, _: &HashMap<String, Value>| {
            let shown = v
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(String::new, |t| t.to_utc().format("%Y-%m-%dT%H:%M").to_string());
            Ok(Value::String(shown))
        });
        tera.register_filter("secs", |v: &Value, _: &HashMap<String, Value>| {
            let shown = v.as_f64().map_or_else(
                || "-".into(),
                |s| crate::duration::format(std::time::Duration::from_secs(s.max(0.0).round() as u64)),
            );
            Ok(Value::String(shown))
        });
        Ok(Pages { tera })
    }

    fn render(&self, name: &str, context: &tera::Context) -> Result<String, DashboardError> {
        self.tera.render(name, context).map_err(template_error)
    }

    fn context(data: &impl Serialize) -> Result<tera::Context, DashboardError> {
        let mut context = tera::Context::from_serialize(data).map_err(template_error)?;
        context.insert("presets", &presets());
        Ok(context)
    }

    pub fn overview(&self, overview: &Overview) -> Result<String, DashboardError> {
        let mut context = Self::context(overview)?;
        context.insert("query", &overview.range.range.query());
        self.render("overview.html", &context)
    }

    pub fn monitor(&self, page: &MonitorPage) -> Result<String, DashboardError> {
        let mut context = Self::context(page)?;
        context.insert("query", &page.range.range.query());
        let report = Source::charts(page);
        let charts = crate::report::html::monitor_html(&report, &page.report);
        context.insert("charts", &charts);
        self.render("monitor.html", &context)
    }

    /// A public status page's content.
    pub fn status(&self, page: &PublicPage) -> Result<String, DashboardError> {
        let mut context = tera::Context::from_serialize(page).map_err(template_error)?;
        context.insert("days", &super::statuspage::DAYS);
        self.render("status.html", &context)
    }

    /// The public page around `main`: no link into the dashboard, no token.
    pub fn public_layout(&self, title: &str, main: &str) -> Result<String, DashboardError> {
        let mut context = tera::Context::new();
        context.insert("title", title);
        context.insert("main", main);
        context.insert("refresh", &STATUS_REFRESH_SECONDS);
        self.render("public.html", &context)
    }

    /// The form that asks for the bearer token; it holds no data.
    pub fn login(&self) -> Result<String, DashboardError> {
        let main = self.render("login.html", &tera::Context::new())?;
        self.layout("Sign in", &main, "bearer")
    }

    /// The page around `main` (already rendered and escaped).
    pub fn layout(&self, title: &str, main: &str, auth: &str) -> Result<String, DashboardError> {
        let mut context = tera::Context::new();
        context.insert("title", title);
        context.insert("main", main);
        context.insert("auth", auth);
        context.insert("refresh", &REFRESH_SECONDS);
        context.insert("version", env!("CARGO_PKG_VERSION"));
        self.render("layout.html", &context)
    }
}

fn template_error(e: tera::Error) -> DashboardError {
    // Tera's own message is "Failed to render 'x'"; the cause says what.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    DashboardError::Template(text)
}
