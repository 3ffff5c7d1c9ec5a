//! Message text from Tera templates: the built-in ones in `templates/notify/`, each replaceable
//! by a file of the same name in the directory `notify.templates` names.
//!
//! Every template gets `event`, `incident` (the webhook body's objects), `idempotency_key` and
//! `dashboard_url` (absent when not configured); `email.html` also gets `title`. `email.html` is
//! HTML-escaped; the text templates are not.

use std::path::Path;

use super::{Notice, NotifyError};

/// The templates, by file name.
const BUILT_IN: [(&str, &str); 3] = [
    ("title.txt", include_str!("../../templates/notify/title.txt")),
    ("text.txt", include_str!("../../templates/notify/text.txt")),
    ("email.html", include_str!("../../templates/notify/email.html")),
];

/// A notice in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: email subject, Slack header, PagerDuty summary, Alertmanager summary.
    pub title: String,
    /// Plain text: email text part, Slack section, webhook `text`, Alertmanager description.
    pub text: String,
    /// The email's HTML part.
    pub html: String,
}

/// The parsed templates, built once per alerter (a broken override stops it at start).
pub struct Renderer {
    tera: tera::Tera,
    dashboard_url: Option<String>,
}

impl Renderer {
    /// The built-in templates, each replaced by `dir/<name>` when that file exists.
    pub fn new(dir: Option<&Path>, dashboard_url: Option<String>) -> Result<Self, NotifyError> {
        let mut tera = tera::Tera::default();
        for (name, built_in) in BUILT_IN {
            let path = dir.map(|d| d.join(name)).filter(|p| p.exists());
            let text = match &path {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| NotifyError::Template { name: path.display().to_string(), reason: e.to_string() })?,
                None => built_in.to_string(),
            };
            let shown = path.as_ref().map_or_else(|| format!("built-in {name}"), |p| p.display().to_string());
            tera.add_raw_template(name, &text)
                .map_err(|e| NotifyError::Template { name: shown, reason: crate::error::chain(&e) })?;
        }
        let renderer = Renderer { tera, dashboard_url };
        // An override that names a variable no notice has fails here, not at the first page.
        renderer.render(&Notice::test("template-check"))?;
        Ok(renderer)
    }

    pub fn render(&self, notice: &Notice) -> Result<Rendered, NotifyError> {
        let mut context = tera::Context::new();
        context.insert("event", &notice.event);
        context.insert("incident", &notice.incident);
        context.insert("idempotency_key", &notice.idempotency_key);
        if let Some(url) = &self.dashboard_url {
            context.insert("dashboard_url", url);
        }
        let render = |name: &str, context: &tera::Context| {
            self.tera
                .render(name, context)
                .map_err(|e| NotifyError::Template { name: name.to_string(), reason: crate::error::chain(&e) })
        };
        let title = render("title.txt", &context)?.trim().replace('\n', " ");
        let text = render("text.txt", &context)?.trim().to_string();
        context.insert("title", &title);
        let html = render("email.html", &context)?;
        Ok(Rendered { title, text, html })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_render_a_notice() {
        let renderer = Renderer::new(None, Some("https://status.example.com".into())).unwrap();
        let mut notice = Notice::test("ops");
        notice.event.kind = "opened".into();
        notice.incident.summary = "api <down> in 2 of 3 regions".into();
        notice.incident.regions = vec!["eu-west".into(), "us-east".into()];
        let r = renderer.render(&notice).unwrap();
        assert_eq!(r.title, "[OPENED WARNING] api <down> in 2 of 3 regions");
        assert!(r.text.contains("Regions: eu-west, us-east") && r.text.contains("https://status.example.com"));
        assert!(r.html.contains("api &lt;down&gt;"), "{}", r.html);
    }

    #[test]
    fn an_override_replaces_its_template_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("title.txt"), "ALERT {{ incident.summary }}").unwrap();
        let r = Renderer::new(Some(dir.path()), None).unwrap().render(&Notice::test("x")).unwrap();
        assert!(r.title.starts_with("ALERT geoctl test"), "{}", r.title);
        std::fs::write(dir.path().join("text.txt"), "{{ nothing.here }}").unwrap();
        let e = Renderer::new(Some(dir.path()), None).err().unwrap().to_string();
        assert!(e.contains("text.txt"), "{e}");
    }
}
