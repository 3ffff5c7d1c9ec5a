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

pub use crate::probe::credential::mask;

/// Removes every occurrence of the secret's sensitive parts from `text` ([`credential::scrub`]),
/// for error messages of libraries that might echo what they were given.
///
/// [`credential::scrub`]: crate::probe::credential::scrub
pub fn scrub(text: &str, secret: &Secret) -> String {
    crate::probe::credential::scrub(text, secret.expose())
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
