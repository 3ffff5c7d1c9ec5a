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

const MASK: &str = "****";

/// Masks a secret for display. URLs keep their scheme, user, host, path and harmless query
/// parameters so an operator can still tell which server is meant; any other secret is replaced
/// whole. The URL is not parsed as a URL: a password with an unencoded `@`, `#`, `/` or `?` would
/// make a parser find the host inside the password, so the user information ends at the last `@`.
pub fn mask(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return MASK.to_string();
    };
    let (user, after) = match split_userinfo(rest) {
        Some((userinfo, after)) => match userinfo.split_once(':') {
            Some((user, _)) => (format!("{user}:{MASK}@"), after),
            None => (format!("{userinfo}@"), after),
        },
        None => (String::new(), rest),
    };
    let after = match after.split_once('?') {
        Some((before, query)) => format!("{before}?{}", mask_query(query)),
        None => after.to_string(),
    };
    format!("{scheme}://{user}{after}")
}

/// `user[:password]` and what follows its last `@`, if there is user information.
fn split_userinfo(rest: &str) -> Option<(&str, &str)> {
    let at = rest.rfind('@')?;
    Some((&rest[..at], &rest[at + 1..]))
}

fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_param(key) => format!("{key}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Query parameters whose values are secrets (`password`, `sslpassword`, `token`, …).
pub fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key"].iter().any(|s| key.contains(s)) && key != "sslkey"
}

/// The sensitive parts of a URL-like secret: its password and secret query values, raw.
fn sensitive_parts(value: &str) -> Vec<&str> {
    let Some((_, rest)) = value.split_once("://") else {
        return vec![value];
    };
    let mut parts = Vec::new();
    let after = match split_userinfo(rest) {
        Some((userinfo, after)) => {
            if let Some((_, password)) = userinfo.split_once(':') {
                parts.push(password);
            }
            after
        }
        None => rest,
    };
    if let Some((_, query)) = after.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                if is_secret_param(key) {
                    parts.push(value);
                }
            }
        }
    }
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Removes every occurrence of the secret's sensitive parts from `text`, raw or
/// percent-decoded, for error messages of libraries that might echo what they were given.
pub fn scrub(text: &str, secret: &Secret) -> String {
    let raw = secret.expose();
    let mut out = text.replace(raw, &secret.masked());
    for part in sensitive_parts(raw) {
        out = out.replace(part, MASK);
        if let Ok(decoded) = urlencoding_decode(part) {
            if !decoded.is_empty() {
                out = out.replace(&decoded, MASK);
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
    fn passwords_with_unencoded_at_and_hash_are_masked_whole() {
        assert_eq!(mask("postgres://geoctl:p@ss#W0rd@127.0.0.1:5432/db"), "postgres://geoctl:****@127.0.0.1:5432/db");
        assert_eq!(mask("postgres://u:a/b?c@h/db"), "postgres://u:****@h/db");
        let masked = mask("postgres://u@h/db?sslmode=require&sslpassword=k3y&application_name=x");
        assert_eq!(masked, "postgres://u@h/db?sslmode=require&sslpassword=****&application_name=x");
        let secret = Secret::new("postgres://u:p@ss#W0rd@h/db?sslpassword=k3y");
        let clean = scrub("auth failed for p@ss#W0rd (sslpassword k3y)", &secret);
        assert!(!clean.contains("W0rd") && !clean.contains("k3y"), "{clean}");
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
