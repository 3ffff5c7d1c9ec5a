//! The script of a synthetic check: its YAML shape, and the validation that
//! runs before anything is stored (`monitor create`, `monitor apply`) or run
//! (`probe --type synthetic`).
//!
//! ```yaml
//! vars: { base: "https://app.example.com" }
//! steps:
//!   - name: login
//!     request: { method: POST, url: "{{ base }}/login", json: { password: "{{ env.DEMO_PASSWORD }}" } }
//!     expect: { status: 200, max_ms: 800 }
//!     extract: { token: "$.token" }
//!   - name: profile
//!     request: { url: "{{ base }}/api/me", headers: { Authorization: "Bearer {{ token }}" } }
//!     expect: { status: 200, body_contains: demo }
//! ```
//!
//! Every string a step sends or looks for is a Tera template over: the
//! script's `vars`, the values extracted by earlier steps, `env.NAME` (the
//! environment where the script runs) and `secret.NAME` (the file named by
//! `NAME_FILE`, else `/run/secrets/NAME`). The stored script holds only the
//! references: values are resolved at run time and never written anywhere.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::browser::Action;
use crate::probe::StatusRanges;

/// Longest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Most steps in one script.
pub const MAX_STEPS: usize = 50;

/// A parsed and validated script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub vars: BTreeMap<String, Value>,
    pub steps: Vec<Step>,
}

/// One step: an HTTP request or a browser journey, what it must meet, and
/// what it hands to later steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub expect: Expect,
    /// Name -> JSONPath into the response's JSON body (request steps only).
    pub extract: Vec<(String, Extract)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Request(Request),
    Browser(Vec<Action>),
}

impl StepKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Request(_) => "request",
            StepKind::Browser(_) => "browser",
        }
    }
}

/// A JSONPath, kept with its text for messages.
#[derive(Debug, Clone)]
pub struct Extract {
    pub text: String,
    pub path: serde_json_path::JsonPath,
}

impl PartialEq for Extract {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// An HTTP request; strings are templates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Default `GET`, or `POST` when the step sends `json` or `body`.
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent with `Content-Type: application/json` unless a header sets one).
    #[serde(default)]
    pub json: Option<Value>,
    /// A raw body.
    #[serde(default)]
    pub body: Option<String>,
    /// Redirects to follow (default 5; 0 judges the 3xx itself).
    #[serde(default)]
    pub max_redirects: Option<u32>,
}

/// What a step's response must meet. Every key is optional; a request step
/// with no `status` expects 200-399.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub status: Option<StatusRanges>,
    pub max_ms: Option<u64>,
    pub body_contains: Option<String>,
    pub body_absent: Option<String>,
    /// Header name -> text its value must contain.
    pub headers: BTreeMap<String, String>,
    /// JSONPath -> the value it must select.
    pub json: Vec<(Extract, Value)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    status: Option<RawStatus>,
    #[serde(default)]
    max_ms: Option<u64>,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default)]
    body_absent: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    json: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStatus {
    Code(u16),
    Ranges(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    steps: Option<Vec<serde_yaml_ng::Value>>,
}

const STEP_KEYS: [&str; 5] = ["name", "request", "browser", "expect", "extract"];

/// Why a script cannot be used. Every variant is bad input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read the script {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the script is not valid YAML: {0}")]
    Yaml(String),
    #[error("the script is {0} bytes; the most is {MAX_SCRIPT_BYTES}")]
    TooLarge(usize),
    #[error("the script has no steps; give at least one under `steps:`")]
    NoSteps,
    #[error("the script has {0} steps; the most is {MAX_STEPS}")]
    TooManySteps(usize),
    #[error("{0}")]
    Invalid(String),
    #[error("step `{step}`: unknown step kind or key `{key}`; a step has `name`, `request` or `browser`, `expect` and `extract`")]
    UnknownKey { step: String, key: String },
    #[error("two steps are named `{0}`; step names must be unique")]
    DuplicateStep(String),
    #[error("step `{step}`: {reason}")]
    Step { step: String, reason: String },
    #[error("step `{step}`: undefined variable `{name}`; define it under `vars:`, extract it in an earlier step, or use `env.{name}` / `secret.{name}`")]
    UndefinedVariable { step: String, name: String },
    #[error("step `{step}`: invalid JSONPath `{path}`: {reason}")]
    BadJsonPath { step: String, path: String, reason: String },
}

impl crate::error::Coded for ScriptError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            ScriptError::Read { .. }
            | ScriptError::Yaml(_)
            | ScriptError::TooLarge(_)
            | ScriptError::NoSteps
            | ScriptError::TooManySteps(_)
            | ScriptError::Invalid(_)
            | ScriptError::UnknownKey { .. }
            | ScriptError::DuplicateStep(_)
            | ScriptError::Step { .. }
            | ScriptError::UndefinedVariable { .. }
            | ScriptError::BadJsonPath { .. } => crate::error::Exit::Input,
        }
    }
}

/// A script's text from a file, or stdin for `-`.
pub fn read(path: &std::path::Path) -> Result<String, ScriptError> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(MAX_SCRIPT_BYTES as u64 + 1).read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| ScriptError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    Ok(text)
}

impl Script {
    /// Parses and validates a script: its shape, its step names, its JSONPaths and that every
    /// variable a template uses is defined before that step runs.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        if text.len() > MAX_SCRIPT_BYTES {
            return Err(ScriptError::TooLarge(text.len()));
        }
        let raw: RawScript = serde_yaml_ng::from_str(text).map_err(|e| ScriptError::Yaml(e.to_string()))?;
        let raw_steps = raw.steps.unwrap_or_default();
        if raw_steps.is_empty() {
            return Err(ScriptError::NoSteps);
        }
        if raw_steps.len() > MAX_STEPS {
            return Err(ScriptError::TooManySteps(raw_steps.len()));
        }
        for name in raw.vars.keys() {
            if !is_identifier(name) || name == "env" || name == "secret" {
                return Err(ScriptError::Invalid(format!(
                    "variable name `{name}` is not usable in templates; use letters, digits and `_` (not `env` or `secret`)"
                )));
            }
        }
        let mut steps = Vec::with_capacity(raw_steps.len());
        for (index, raw_step) in raw_steps.into_iter().enumerate() {
            let step = parse_step(index, raw_step)?;
            if steps.iter().any(|s: &Step| s.name == step.name) {
                return Err(ScriptError::DuplicateStep(step.name));
            }
            steps.push(step);
        }
        let script = Script { vars: raw.vars, steps };
        script.check_variables()?;
        Ok(script)
    }

    /// What the script checks, for lists: its first URL with `vars` filled in (as written,
    /// spaces dropped, when it uses other values).
    pub fn target(&self) -> String {
        let first = self.steps.first().and_then(|step| match &step.kind {
            StepKind::Request(r) => Some(r.url.as_str()),
            StepKind::Browser(actions) => actions.iter().find_map(|a| match a {
                Action::Goto(url) => Some(url.as_str()),
                _ => None,
            }),
        });
        let Some(template) = first else { return String::new() };
        let mut context = tera::Context::new();
        for (name, value) in &self.vars {
            context.insert(name.as_str(), value);
        }
        let text = render(template, &context).unwrap_or_else(|_| template.to_string());
        text.chars().filter(|c| !c.is_whitespace() && !c.is_control()).take(crate::text::MAX_TARGET).collect()
    }

    /// Whether any step needs a browser.
    pub fn needs_browser(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.kind, StepKind::Browser(_)))
    }

    /// Renders every template of every step against the names defined before it (values do
    /// not matter here, only whether they exist).
    fn check_variables(&self) -> Result<(), ScriptError> {
        let mut known: BTreeMap<String, Value> = self.vars.clone();
        for step in &self.steps {
            for template in step.templates() {
                let mut context = tera::Context::new();
                for (name, value) in &known {
                    context.insert(name.as_str(), value);
                }
                let refs = references(template);
                context.insert("env", &refs.env.iter().map(|n| (n.clone(), String::new())).collect::<BTreeMap<_, _>>());
                context.insert(
                    "secret",
                    &refs.secret.iter().map(|n| (n.clone(), String::new())).collect::<BTreeMap<_, _>>(),
                );
                render(template, &context).map_err(|e| template_error(&step.name, &e))?;
            }
            for (name, _) in &step.extract {
                known.insert(name.clone(), Value::String(String::new()));
            }
        }
        Ok(())
    }
}

impl Step {
    /// Every template string of the step.
    pub fn templates(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match &self.kind {
            StepKind::Request(r) => {
                out.push(&r.url);
                out.extend(r.headers.values().map(String::as_str));
                out.extend(r.body.as_deref());
                if let Some(json) = &r.json {
                    json_strings(json, &mut out);
                }
            }
            StepKind::Browser(actions) => {
                for action in actions {
                    match action {
                        Action::Goto(s) | Action::Click(s) | Action::WaitFor(s) => out.push(s),
                        Action::Fill { selector, value } => out.extend([selector.as_str(), value.as_str()]),
                        Action::ExpectText { selector, contains } => out.extend([selector.as_str(), contains.as_str()]),
                    }
                }
            }
        }
        out.extend(self.expect.body_contains.as_deref());
        out.extend(self.expect.body_absent.as_deref());
        out.extend(self.expect.headers.values().map(String::as_str));
        for (_, value) in &self.expect.json {
            json_strings(value, &mut out);
        }
        out
    }
}

fn json_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

fn parse_step(index: usize, raw: serde_yaml_ng::Value) -> Result<Step, ScriptError> {
    let serde_yaml_ng::Value::Mapping(map) = raw else {
        return Err(ScriptError::Invalid(format!(
            "steps[{index}] is not a mapping; give `name:` and `request:` or `browser:`"
        )));
    };
    let name = match map.get("name") {
        Some(serde_yaml_ng::Value::String(name)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => {
            return Err(ScriptError::Invalid(format!("steps[{index}] has no `name:`; every step needs a unique name")))
        }
    };
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ScriptError::Invalid(format!(
            "steps[{index}]: a step name is 1 to 100 characters without control characters"
        )));
    }
    for key in map.keys() {
        let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_string);
        if !STEP_KEYS.contains(&key.as_str()) {
            return Err(ScriptError::UnknownKey { step: name, key });
        }
    }
    let fail = |reason: String| ScriptError::Step { step: name.clone(), reason };
    let field = |key: &str| map.get(key).cloned();
    let kind = match (field("request"), field("browser")) {
        (Some(_), Some(_)) => return Err(fail("has both `request` and `browser`; a step is one or the other".into())),
        (None, None) => return Err(fail("has neither `request` nor `browser`".into())),
        (Some(request), None) => {
            let request: Request =
                serde_yaml_ng::from_value(request).map_err(|e| fail(format!("request: {}", yaml_reason(&e))))?;
            if request.json.is_some() && request.body.is_some() {
                return Err(fail("request: give `json` or `body`, not both".into()));
            }
            if let Some(method) = &request.method {
                crate::probe::http::parse_method(method).map_err(|e| fail(format!("request: {e}")))?;
            }
            if request.url.trim().is_empty() {
                return Err(fail("request: `url` is empty".into()));
            }
            if request.max_redirects.is_some_and(|n| n > 20) {
                return Err(fail("request: `max_redirects` is at most 20".into()));
            }
            StepKind::Request(request)
        }
        (None, Some(browser)) => {
            // Actions are one-key maps (`- goto: URL`): serde_yaml_ng reads enums from YAML tags,
            // serde_json from one-key maps, so they go through JSON.
            let actions: Vec<Action> = serde_json::to_value(browser)
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                .map_err(|e| fail(format!("browser: {e}")))?;
            if actions.is_empty() {
                return Err(fail("browser: no actions; give at least `- goto: URL`".into()));
            }
            StepKind::Browser(actions)
        }
    };
    let expect = match field("expect") {
        None => Expect::default(),
        Some(raw) => {
            let raw: RawExpect =
                serde_yaml_ng::from_value(raw).map_err(|e| fail(format!("expect: {}", yaml_reason(&e))))?;
            let status = match raw.status {
                None => None,
                Some(RawStatus::Code(code)) => Some(format!("{code}").parse()),
                Some(RawStatus::Ranges(text)) => Some(text.parse()),
            }
            .transpose()
            .map_err(|e: crate::probe::StatusRangesError| fail(format!("expect: {e}")))?;
            let mut json = Vec::new();
            for (path, value) in raw.json {
                json.push((json_path(&name, &path)?, value));
            }
            let expect = Expect {
                status,
                max_ms: raw.max_ms,
                body_contains: raw.body_contains,
                body_absent: raw.body_absent,
                headers: raw.headers,
                json,
            };
            if matches!(kind, StepKind::Browser(_))
                && (expect.status.is_some()
                    || expect.body_contains.is_some()
                    || expect.body_absent.is_some()
                    || !expect.headers.is_empty()
                    || !expect.json.is_empty())
            {
                return Err(fail(
                    "expect: a browser step takes only `max_ms`; check page text with `- expect_text:` actions".into(),
                ));
            }
            expect
        }
    };
    let mut extract = Vec::new();
    if let Some(raw) = field("extract") {
        if matches!(kind, StepKind::Browser(_)) {
            return Err(fail("extract: only request steps extract values (from their JSON body)".into()));
        }
        let raw: BTreeMap<String, String> =
            serde_yaml_ng::from_value(raw).map_err(|e| fail(format!("extract: {}", yaml_reason(&e))))?;
        for (var, path) in raw {
            if !is_identifier(&var) || var == "env" || var == "secret" {
                return Err(fail(format!(
                    "extract: `{var}` is not a usable variable name; use letters, digits and `_` (not `env` or `secret`)"
                )));
            }
            extract.push((var, json_path(&name, &path)?));
        }
    }
    Ok(Step { name, kind, expect, extract })
}

fn json_path(step: &str, text: &str) -> Result<Extract, ScriptError> {
    serde_json_path::JsonPath::parse(text)
        .map(|path| Extract { text: text.to_string(), path })
        .map_err(|e| ScriptError::BadJsonPath { step: step.to_string(), path: text.to_string(), reason: e.to_string() })
}

fn yaml_reason(e: &serde_yaml_ng::Error) -> String {
    e.to_string()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `env.NAME` and `secret.NAME` names a template mentions.
#[derive(Debug, Default, PartialEq)]
pub struct References {
    pub env: BTreeSet<String>,
    pub secret: BTreeSet<String>,
}

/// Scans a template for `env.NAME` and `secret.NAME` (a scan, not a parse: a name mentioned in
/// a branch that never renders is still resolved, which costs a lookup and nothing else).
pub fn references(template: &str) -> References {
    let mut refs = References::default();
    for (prefix, set) in [("env.", &mut refs.env), ("secret.", &mut refs.secret)] {
        let mut rest = template;
        let mut offset = 0;
        while let Some(at) = rest.find(prefix) {
            let start = offset + at;
            let preceded = template[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let name: String = template[start + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !preceded && is_identifier(&name) {
                set.insert(name);
            }
            offset = start + prefix.len();
            rest = &template[offset..];
        }
    }
    refs
}

/// Renders one template (no autoescaping: these are URLs, headers and bodies, not HTML).
pub(crate) fn render(template: &str, context: &tera::Context) -> Result<String, tera::Error> {
    if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
        return Ok(template.to_string());
    }
    tera::Tera::one_off(template, context, false)
}

/// The whole cause chain of a Tera error, in one line.
/// (Tera's own "Failed to render '__tera_one_off'" wrapper left out).
pub(crate) fn tera_reason(e: &tera::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) if e.to_string().starts_with("Failed to render '__tera_one_off'") => crate::error::chain(cause),
        _ => crate::error::chain(e),
    }
}

fn template_error(step: &str, e: &tera::Error) -> ScriptError {
    let reason = tera_reason(e);
    // Tera says "Variable `x` not found in context while rendering …".
    if let Some(rest) = reason.split("Variable `").nth(1) {
        if let Some((name, tail)) = rest.split_once('`') {
            if tail.trim_start().starts_with("not found in context") {
                let name = name.trim_start_matches("env.").trim_start_matches("secret.");
                return ScriptError::UndefinedVariable { step: step.to_string(), name: name.to_string() };
            }
        }
    }
    ScriptError::Step { step: step.to_string(), reason: format!("invalid template: {reason}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"
vars: { base: "http://127.0.0.1:1" }
steps:
  - name: login
    request: { method: POST, url: "{{ base }}/login", json: { user: demo, password: "{{ env.DEMO_PASSWORD }}" } }
    expect: { status: 200, max_ms: 800 }
    extract: { token: "$.token" }
  - name: profile
    request: { url: "{{ base }}/api/me", headers: { Authorization: "Bearer {{ token }}" } }
    expect: { status: "200-299", body_contains: demo, json: { "$.user": demo } }
  - name: dashboard
    browser:
      - goto: "{{ base }}/app"
      - click: "#load"
      - wait_for: "#result"
      - expect_text: { selector: "#result", contains: loaded }
"##;

    #[test]
    fn a_full_script_parses() {
        let script = Script::parse(GOOD).unwrap();
        assert_eq!(script.steps.len(), 3);
        assert!(script.needs_browser());
        assert_eq!(script.steps[0].extract[0].0, "token");
        assert!(script.steps[1].expect.status.as_ref().unwrap().contains(250));
        match &script.steps[2].kind {
            StepKind::Browser(actions) => assert_eq!(actions[1], Action::Click("#load".into())),
            other => panic!("{other:?}"),
        }
    }

    fn error(text: &str) -> String {
        Script::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_scripts_say_what_is_wrong() {
        assert!(error("steps: [").contains("not valid YAML"));
        assert!(error("vars: {}").contains("no steps"));
        assert!(error("steps: []").contains("no steps"));
        assert!(error("stepz: []").contains("unknown field `stepz`"));
        let unknown = error("steps:\n  - name: a\n    grpc: { url: x }\n");
        assert!(unknown.contains("step `a`: unknown step kind or key `grpc`"), "{unknown}");
        let both = error("steps:\n  - name: a\n    request: { url: x }\n    browser: [ { goto: x } ]\n");
        assert!(both.contains("both"), "{both}");
        assert!(error("steps:\n  - name: a\n").contains("neither"));
        assert!(error("steps:\n  - request: { url: x }\n").contains("no `name:`"));
        let dup = error("steps:\n  - name: a\n    request: { url: x }\n  - name: a\n    request: { url: y }\n");
        assert!(dup.contains("two steps are named `a`"), "{dup}");
        let undefined = error("steps:\n  - name: a\n    request: { url: \"{{ bse }}/x\" }\n");
        assert!(undefined.contains("step `a`: undefined variable `bse`"), "{undefined}");
        let path = error("steps:\n  - name: a\n    request: { url: x }\n    extract: { t: \"$.[\" }\n");
        assert!(path.contains("step `a`: invalid JSONPath `$.[`"), "{path}");
        let key = error("steps:\n  - name: a\n    request: { url: x, verb: GET }\n");
        assert!(key.contains("unknown field `verb`"), "{key}");
        let expect = error("steps:\n  - name: a\n    request: { url: x }\n    expect: { stauts: 200 }\n");
        assert!(expect.contains("unknown field `stauts`"), "{expect}");
        let action = error("steps:\n  - name: a\n    browser: [ { hover: x } ]\n");
        assert!(action.contains("step `a`: browser"), "{action}");
        assert!(error("steps:\n  - name: a\n    request: { url: x, method: FETCH }\n").contains("unsupported method"));
        assert!(error("steps:\n  - name: a\n    request: { url: x }\n    expect: { status: 99 }\n")
            .contains("not a status code"));
    }

    #[test]
    fn a_value_is_known_only_after_the_step_that_extracts_it() {
        let early =
            "steps:\n  - name: a\n    request: { url: \"http://h/{{ token }}\" }\n    extract: { token: \"$.t\" }\n";
        assert!(error(early).contains("undefined variable `token`"));
        let later = "steps:\n  - name: a\n    request: { url: \"http://h/\" }\n    extract: { token: \"$.t\" }\n  - name: b\n    request: { url: \"http://h/{{ token }}\" }\n";
        Script::parse(later).unwrap();
    }

    #[test]
    fn env_and_secret_references_are_found() {
        let refs = references("{{ env.A_1 }} {{secret.B}} {{ myenv.C }} {{ env. }}");
        assert_eq!(refs.env.into_iter().collect::<Vec<_>>(), vec!["A_1".to_string()]);
        assert_eq!(refs.secret.into_iter().collect::<Vec<_>>(), vec!["B".to_string()]);
    }
}
