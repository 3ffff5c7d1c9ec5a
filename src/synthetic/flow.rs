//! Running a script: each step in order until the first that fails, every
//! request through the probe engine (its own connection per step: every phase
//! of every step is measured), browser steps through [`super::browser`].
//!
//! `env.*` and `secret.*` values are read here, where the script runs, and
//! every value read, with the values sent in credential headers, is masked in
//! all the result says (URLs, messages).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::browser::{self, Action, PageTiming};
use super::script::{references, render, tera_reason, Expect, Request, Script, Step, StepKind};
use crate::config::{scrub, Secret};
use crate::probe::credential::{is_credential_header, MASK};
use crate::probe::http::{self, HttpSpec};
use crate::probe::{Failure, FailureKind, Phases, ProbeOptions, StatusRanges};

/// Where a script runs and how long it may take.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Resolver and address family for request steps; its `timeout` bounds the whole flow.
    pub probe: ProbeOptions,
    /// The Chromium for browser steps; `None`: this host cannot run them.
    pub chromium: Option<PathBuf>,
}

impl RunOptions {
    /// A flow bounded by `timeout`, browser found as [`browser::find_chromium`] says.
    pub fn new(timeout: Duration) -> Self {
        RunOptions { probe: ProbeOptions { timeout, ..ProbeOptions::default() }, chromium: browser::find_chromium() }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Passed,
    Failed,
    /// Not run: an earlier step failed.
    Skipped,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Passed => "passed",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
        }
    }
}

/// What one step measured. Times in ms; a phase not measured is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    /// `request` or `browser`.
    pub kind: String,
    pub outcome: StepOutcome,
    /// `None` when skipped.
    pub duration_ms: Option<f64>,
    /// Request steps: the URL requested, secrets masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Browser steps: one entry per page opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageTiming>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Where the failure's screenshot is (a file path, or the result it is stored with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<String>,
}

impl StepResult {
    fn new(step: &Step) -> Self {
        StepResult {
            name: step.name.clone(),
            kind: step.kind.as_str().to_string(),
            outcome: StepOutcome::Skipped,
            duration_ms: None,
            url: None,
            phases: None,
            status: None,
            pages: Vec::new(),
            console_errors: None,
            failed_requests: None,
            failure: None,
            screenshot: None,
        }
    }
}

/// A whole run: each step, and the first that failed with why.
#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    pub up: bool,
    pub started_at: DateTime<Utc>,
    /// The sum of the steps' durations.
    pub total_ms: f64,
    pub steps: Vec<StepResult>,
    /// The first failing step's name.
    pub failed_step: Option<String>,
    /// Why it failed, prefixed with `step `NAME`: `.
    pub failure: Option<Failure>,
    /// The PNG of the failing browser step, when one was taken (stored by the caller).
    #[serde(skip)]
    pub screenshot: Option<Vec<u8>>,
}

impl FlowResult {
    /// The measured phases summed over the request steps: `None` for a phase no step measured.
    pub fn phase_sums(&self) -> Phases {
        let sum = |f: fn(&Phases) -> Option<f64>| {
            self.steps
                .iter()
                .filter_map(|s| s.phases.as_ref().and_then(f))
                .fold(None, |acc: Option<f64>, v| Some(acc.unwrap_or(0.0) + v))
        };
        Phases {
            dns_ms: sum(|p| p.dns_ms),
            connect_ms: sum(|p| p.connect_ms),
            tls_ms: sum(|p| p.tls_ms),
            first_byte_ms: sum(|p| p.first_byte_ms),
            total_ms: self.total_ms,
        }
    }
}

/// Where `env.*` and `secret.*` values come from.
pub trait Source: Sync {
    fn env(&self, name: &str) -> Option<String>;
    fn secret(&self, name: &str) -> Result<String, String>;
}

/// The process's environment, and Docker secrets: `NAME_FILE` when set, else `/run/secrets/NAME`.
pub struct Environment;

impl Source for Environment {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn secret(&self, name: &str) -> Result<String, String> {
        let path = std::env::var_os(format!("{name}_FILE"))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/secrets").join(name));
        // The one rule for secret files (one trailing newline dropped, empty refused), as for settings.
        match crate::config::read_secret_file(&path, &format!("secret `{name}`")) {
            Ok(secret) => Ok(secret.expose().to_string()),
            Err(crate::config::ConfigError::SecretFileUnreadable { source, .. }) => Err(format!(
                "secret `{name}`: cannot read {} ({source}); set {name}_FILE or mount the Docker secret",
                path.display()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Values that must not be shown, and their masking.
#[derive(Default)]
struct Masks(Vec<Secret>);

impl Masks {
    fn add(&mut self, value: &str) {
        // Very short values would mask ordinary text everywhere; they are still never stored.
        if value.chars().count() >= 3 && !self.0.iter().any(|s| s.expose() == value) {
            self.0.push(Secret::new(value));
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            out = scrub(&out, secret);
        }
        out
    }
}

/// Runs a script once with values from the process's environment.
pub async fn run(script: &Script, opts: &RunOptions) -> FlowResult {
    run_with(script, opts, &Environment).await
}

/// Runs a script once. Never panics; the first failing step ends the run.
pub async fn run_with(script: &Script, opts: &RunOptions, source: &dyn Source) -> FlowResult {
    let started_at = Utc::now();
    let deadline = Instant::now() + opts.probe.timeout;
    let mut masks = Masks::default();
    let mut known: BTreeMap<String, Value> = script.vars.clone();
    let mut steps: Vec<StepResult> = script.steps.iter().map(StepResult::new).collect();
    let mut failure: Option<(usize, Failure)> = None;
    let mut screenshot = None;
    for (index, step) in script.steps.iter().enumerate() {
        let started = Instant::now();
        let result = &mut steps[index];
        let outcome = match context(step, &known, source, &mut masks) {
            Err(f) => Err(f),
            Ok(ctx) => {
                let remaining = deadline.saturating_duration_since(started);
                if remaining.is_zero() {
                    Err(Failure::new(
                        FailureKind::Timeout,
                        format!("not started: the flow's {} ms were used up", opts.probe.timeout.as_millis()),
                    ))
                } else {
                    match &step.kind {
                        StepKind::Request(request) => {
                            run_request(step, request, &ctx, opts, remaining, &mut masks, &mut known, result).await
                        }
                        StepKind::Browser(actions) => {
                            run_browser(actions, &ctx, opts, remaining, result).await.map_err(|(f, png)| {
                                screenshot = png;
                                f
                            })
                        }
                    }
                }
            }
        };
        let elapsed = crate::probe::timing::ms(started.elapsed());
        let duration = match result.phases.as_ref() {
            Some(p) => p.total_ms.max(0.0),
            None => elapsed,
        };
        result.duration_ms = Some(duration);
        let outcome = outcome.and_then(|()| match step.expect.max_ms {
            Some(max) if duration > max as f64 => {
                Err(Failure::new(FailureKind::Assertion, format!("took {duration:.1} ms; expected at most {max} ms")))
            }
            _ => Ok(()),
        });
        match outcome {
            Ok(()) => result.outcome = StepOutcome::Passed,
            Err(f) => {
                result.outcome = StepOutcome::Failed;
                result.failure = Some(f.clone());
                failure = Some((index, f));
                break;
            }
        }
    }
    for step in &mut steps {
        step.url = step.url.as_deref().map(|u| masks.apply(u));
        if let Some(f) = step.failure.as_mut() {
            f.message = masks.apply(&f.message);
        }
    }
    let total_ms = crate::probe::timing::ms(Duration::from_secs_f64(
        steps.iter().filter_map(|s| s.duration_ms).sum::<f64>().max(0.0) / 1000.0,
    ));
    let (failed_step, failure) = match failure {
        Some((index, f)) => {
            let name = script.steps[index].name.clone();
            let message = format!("step `{name}`: {}", masks.apply(&f.message));
            (Some(name), Some(Failure::new(f.kind, message)))
        }
        None => (None, None),
    };
    FlowResult { up: failure.is_none(), started_at, total_ms, steps, failed_step, failure, screenshot }
}

/// The template context of a step: vars, extracted values, and the env/secret values its
/// templates mention (read now, remembered as masks).
fn context(
    step: &Step,
    known: &BTreeMap<String, Value>,
    source: &dyn Source,
    masks: &mut Masks,
) -> Result<tera::Context, Failure> {
    let mut ctx = tera::Context::new();
    for (name, value) in known {
        ctx.insert(name.as_str(), value);
    }
    let mut env = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for template in step.templates() {
        let refs = references(template);
        for name in refs.env {
            let value = source.env(&name).ok_or_else(|| {
                Failure::new(
                    FailureKind::Other,
                    format!("environment variable `{name}` is not set where the script runs"),
                )
            })?;
            masks.add(&value);
            env.insert(name, value);
        }
        for name in refs.secret {
            let value = source.secret(&name).map_err(|m| Failure::new(FailureKind::Other, m))?;
            masks.add(&value);
            secret.insert(name, value);
        }
    }
    ctx.insert("env", &env);
    ctx.insert("secret", &secret);
    Ok(ctx)
}

fn fill(template: &str, ctx: &tera::Context) -> Result<String, Failure> {
    render(template, ctx).map_err(|e| Failure::new(FailureKind::Other, format!("template: {}", tera_reason(&e))))
}

fn fill_json(value: &Value, ctx: &tera::Context) -> Result<Value, Failure> {
    Ok(match value {
        Value::String(s) => Value::String(fill(s, ctx)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_json(v, ctx)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), fill_json(v, ctx)?))).collect::<Result<_, Failure>>()?)
        }
        other => other.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_request(
    step: &Step,
    request: &Request,
    ctx: &tera::Context,
    opts: &RunOptions,
    remaining: Duration,
    masks: &mut Masks,
    known: &mut BTreeMap<String, Value>,
    result: &mut StepResult,
) -> Result<(), Failure> {
    let url = fill(&request.url, ctx)?;
    result.url = Some(crate::probe::display_url(&url));
    let mut spec = HttpSpec::new(url.clone());
    spec.keep_response = true;
    // The step's own expectations judge the status, so the probe accepts any.
    spec.expected_status = StatusRanges::new(vec![(100, 999)]);
    if let Some(n) = request.max_redirects {
        spec.max_redirects = n;
    }
    let has_body = request.json.is_some() || request.body.is_some();
    spec.method = match &request.method {
        Some(m) => m.to_ascii_uppercase(),
        None if has_body => "POST".into(),
        None => "GET".into(),
    };
    for (name, template) in &request.headers {
        let value = fill(template, ctx)?;
        if is_credential_header(name) {
            masks.add(&value);
            if let Some((_, token)) = value.split_once(' ') {
                masks.add(token);
            }
        }
        spec.headers.push((name.clone(), value));
    }
    if let Some(json) = &request.json {
        spec.body = Some(fill_json(json, ctx)?.to_string().into_bytes());
        if !spec.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
            spec.headers.push(("Content-Type".into(), "application/json".into()));
        }
    } else if let Some(body) = &request.body {
        spec.body = Some(fill(body, ctx)?.into_bytes());
    }
    let probe = ProbeOptions { timeout: remaining, ..opts.probe.clone() };
    // In a task of its own, as `probe::run` does, so a panic in the engine is a failed step.
    let (measured, response) = tokio::spawn(async move { http::run_reading(&spec, &probe).await })
        .await
        .map_err(|e| Failure::new(FailureKind::Other, format!("internal error: the request task failed: {e}")))?;
    result.phases = Some(measured.phases);
    result.status = measured.http.as_ref().and_then(|h| h.status);
    if let Some(f) = measured.failure {
        return Err(f);
    }
    judge(&step.expect, result.status, &response, ctx)?;
    if !step.extract.is_empty() {
        let body = parse_json(&response.body, "extract")?;
        for (name, path) in &step.extract {
            let value = path.path.query(&body).first().cloned().ok_or_else(|| {
                Failure::new(
                    FailureKind::Assertion,
                    format!("extract `{name}`: `{}` selects nothing in the body", path.text),
                )
            })?;
            known.insert(name.clone(), value);
        }
    }
    Ok(())
}

fn parse_json(body: &[u8], what: &str) -> Result<Value, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::new(FailureKind::Assertion, format!("{what}: the response body is not JSON ({e})")))
}

/// The step's expectations, in the order they are written in the docs: status, body, headers, JSON.
fn judge(expect: &Expect, status: Option<u16>, response: &http::Response, ctx: &tera::Context) -> Result<(), Failure> {
    let status = status.unwrap_or(0);
    let wanted = expect.status.clone().unwrap_or_default();
    if !wanted.contains(status) {
        return Err(Failure::new(FailureKind::HttpStatus, format!("status {status}; expected {wanted}")));
    }
    let body = &response.body;
    if let Some(text) = &expect.body_contains {
        let text = fill(text, ctx)?;
        if !http::contains(body, text.as_bytes()) {
            return Err(Failure::new(FailureKind::Keyword, format!("body does not contain `{text}`")));
        }
    }
    if let Some(text) = &expect.body_absent {
        let text = fill(text, ctx)?;
        if http::contains(body, text.as_bytes()) {
            return Err(Failure::new(FailureKind::Keyword, format!("body contains `{text}`, which must be absent")));
        }
    }
    for (name, template) in &expect.headers {
        let wanted = fill(template, ctx)?;
        let found = response.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        match found {
            None => {
                return Err(Failure::new(FailureKind::Assertion, format!("header `{name}` is missing")));
            }
            Some(value) if !value.contains(&wanted) => {
                let shown = if is_credential_header(name) { MASK } else { value };
                return Err(Failure::new(
                    FailureKind::Assertion,
                    format!("header `{name}` is `{shown}`; expected it to contain `{wanted}`"),
                ));
            }
            Some(_) => {}
        }
    }
    if !expect.json.is_empty() {
        let doc = parse_json(body, "expect.json")?;
        for (path, wanted) in &expect.json {
            let wanted = fill_json(wanted, ctx)?;
            match path.path.query(&doc).first() {
                None => {
                    return Err(Failure::new(
                        FailureKind::Assertion,
                        format!("`{}` selects nothing in the body", path.text),
                    ))
                }
                Some(found) if *found != wanted => {
                    return Err(Failure::new(
                        FailureKind::Assertion,
                        format!("`{}` is {}; expected {}", path.text, short(found), short(&wanted)),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// A JSON value for a message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// Longest any one browser action may take.
const MAX_ACTION_TIME: Duration = Duration::from_secs(30);

async fn run_browser(
    actions: &[Action],
    ctx: &tera::Context,
    opts: &RunOptions,
    remaining: Duration,
    result: &mut StepResult,
) -> Result<(), (Failure, Option<Vec<u8>>)> {
    let Some(chromium) = opts.chromium.clone() else {
        return Err((
            Failure::new(
                FailureKind::NoBrowser,
                "no browser in this region: no Chromium at CHROMIUM_PATH or on PATH where this step ran",
            ),
            None,
        ));
    };
    let filled = actions.iter().map(|a| fill_action(a, ctx)).collect::<Result<Vec<_>, _>>().map_err(|f| (f, None))?;
    let options =
        browser::Options { chromium, action_timeout: remaining.min(MAX_ACTION_TIME), screenshot_on_failure: true };
    let outcome = browser::run(&filled, &options).await;
    result.pages = outcome.pages;
    result.console_errors = Some(outcome.console_errors);
    result.failed_requests = Some(outcome.failed_requests);
    result.duration_ms = Some(crate::probe::timing::ms(outcome.duration));
    match outcome.failure {
        None => Ok(()),
        Some((index, why)) => {
            let action = actions.get(index).map_or_else(|| format!("action {}", index + 1), describe);
            Err((
                Failure::new(FailureKind::Browser, format!("action {} ({action}): {why}", index + 1)),
                outcome.screenshot,
            ))
        }
    }
}

fn fill_action(action: &Action, ctx: &tera::Context) -> Result<Action, Failure> {
    Ok(match action {
        Action::Goto(s) => Action::Goto(fill(s, ctx)?),
        Action::Click(s) => Action::Click(fill(s, ctx)?),
        Action::WaitFor(s) => Action::WaitFor(fill(s, ctx)?),
        Action::Fill { selector, value } => Action::Fill { selector: fill(selector, ctx)?, value: fill(value, ctx)? },
        Action::ExpectText { selector, contains } => {
            Action::ExpectText { selector: fill(selector, ctx)?, contains: fill(contains, ctx)? }
        }
    })
}

/// An action as written (templates, not values: nothing secret is shown).
fn describe(action: &Action) -> String {
    match action {
        Action::Goto(s) => format!("goto {s}"),
        Action::Click(s) => format!("click {s}"),
        Action::WaitFor(s) => format!("wait_for {s}"),
        Action::Fill { selector, .. } => format!("fill {selector}"),
        Action::ExpectText { selector, contains } => format!("expect_text {selector} contains {contains}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Source for Fixed {
        fn env(&self, name: &str) -> Option<String> {
            (name == "PW").then(|| "hunter2-secret".to_string())
        }
        fn secret(&self, name: &str) -> Result<String, String> {
            Err(format!("secret `{name}`: none here"))
        }
    }

    #[tokio::test]
    async fn a_browser_step_without_a_browser_fails_clearly() {
        let script =
            Script::parse("steps:\n  - name: page\n    browser: [ { goto: \"http://127.0.0.1:9/{{ env.PW }}\" } ]\n")
                .unwrap();
        let opts = RunOptions { probe: ProbeOptions::default(), chromium: None };
        let result = run_with(&script, &opts, &Fixed).await;
        assert!(!result.up);
        assert_eq!(result.failed_step.as_deref(), Some("page"));
        let failure = result.failure.unwrap();
        assert_eq!(failure.kind, FailureKind::NoBrowser);
        assert!(failure.message.starts_with("step `page`: no browser in this region"), "{}", failure.message);
    }

    #[tokio::test]
    async fn a_missing_environment_variable_fails_its_step_and_skips_the_rest() {
        let script = Script::parse(
            "steps:\n  - name: a\n    request: { url: \"http://127.0.0.1:9/{{ env.NOPE }}\" }\n  - name: b\n    request: { url: \"http://127.0.0.1:9/\" }\n",
        )
        .unwrap();
        let opts = RunOptions { probe: ProbeOptions::default(), chromium: None };
        let result = run_with(&script, &opts, &Fixed).await;
        assert_eq!(result.steps[0].outcome, StepOutcome::Failed);
        assert_eq!(result.steps[1].outcome, StepOutcome::Skipped);
        assert_eq!(result.steps[1].duration_ms, None);
        assert!(result.failure.unwrap().message.contains("`NOPE` is not set"));
    }

    #[test]
    fn masks_hide_raw_and_encoded_values() {
        let mut masks = Masks::default();
        masks.add("p@ss word");
        let shown = masks.apply("http://h/?pw=p%40ss+word and p@ss word and p%40ss%20word");
        assert!(!shown.contains("ss"), "{shown}");
    }
}
