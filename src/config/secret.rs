//! Secret values: never shown in full, not even by `Debug`.

use std::fmt;

/// A value that must not reach stdout, logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that needs it (a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What may be shown: a URL keeps everything but its password, any other
    /// secret is replaced whole.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

/// Masks a secret for display. URLs with credentials keep their scheme, user,
/// host and path so an operator can still tell which server is meant.
pub fn mask(value: &str) -> String {
    const MASK: &str = "****";
    if value.contains("://") {
        if let Ok(mut url) = url::Url::parse(value) {
            if url.password().is_some() && url.set_password(Some(MASK)).is_ok() {
                return url.to_string();
            }
            if url.password().is_none() && url.query_pairs().all(|(k, _)| !is_secret_param(&k)) {
                return url.to_string();
            }
            // A password passed as a query parameter (`?password=…`).
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_param(&k) { MASK.to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            return url.to_string();
        }
    }
    MASK.to_string()
}

fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.contains("token")
}

/// Removes every occurrence of the secret's sensitive part from `text`, for
/// error messages of libraries that might echo what they were given.
pub fn scrub(text: &str, secret: &Secret) -> String {
    let raw = secret.expose();
    let mut out = text.replace(raw, &secret.masked());
    if let Ok(url) = url::Url::parse(raw) {
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            out = out.replace(password, "****");
            if let Ok(decoded) = urlencoding_decode(password) {
                if !decoded.is_empty() {
                    out = out.replace(&decoded, "****");
                }
            }
        }
    }
    out
}

fn urlencoding_decode(text: &str) -> Result<String, ()> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .ok_or(())?;
    String::from_utf8(bytes).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask("postgres://geoctl:hunter2@db.internal:5432/geoctl"),
            "postgres://geoctl:****@db.internal:5432/geoctl"
        );
        assert_eq!(mask("redis://:s3cret@10.0.0.5:6379/0"), "redis://:****@10.0.0.5:6379/0");
        assert_eq!(mask("redis://10.0.0.5:6379/0"), "redis://10.0.0.5:6379/0");
        assert!(!mask("postgres://u@h/db?password=hunter2").contains("hunter2"));
    }

    #[test]
    fn plain_secrets_are_masked_whole() {
        assert_eq!(mask("wJalrXUtnFEMI/K7MDENG"), "****");
        assert_eq!(format!("{:?}", Secret::new("abc")), "Secret(****)");
    }

    #[test]
    fn scrub_removes_the_password_from_messages() {
        let secret = Secret::new("postgres://u:p%40ss@h/db");
        let message = "failed for postgres://u:p%40ss@h/db (password p@ss)";
        let clean = scrub(message, &secret);
        assert!(!clean.contains("p%40ss") && !clean.contains("p@ss"), "{clean}");
    }
}
