//! Who may read the dashboard: anyone on loopback, or whoever shows the bearer token or the basic
//! credentials read from a file. Credentials are compared in constant time, so the time an answer
//! takes says nothing about how much of a guess was right.

use std::path::Path;

use subtle::ConstantTimeEq as _;

use super::DashboardError;
use crate::config::Secret;

/// How requests prove they may read.
pub enum Auth {
    /// Nothing asked: only allowed on a loopback address.
    Open,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`: the whole `user:password` is the secret.
    Basic(Secret),
}

impl Auth {
    /// Reads the token or the `user:password` line from its file. An unreadable, empty or malformed
    /// file is bad input, named without its content.
    pub fn from_files(token_file: Option<&Path>, basic_file: Option<&Path>) -> Result<Auth, DashboardError> {
        let read = |path: &Path| -> Result<String, DashboardError> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| DashboardError::AuthFile { path: path.display().to_string(), why: e.to_string() })?;
            let line = text.trim().to_string();
            if line.is_empty() || line.lines().count() > 1 {
                return Err(DashboardError::AuthFile {
                    path: path.display().to_string(),
                    why: "it must hold exactly one non-empty line".into(),
                });
            }
            Ok(line)
        };
        match (token_file, basic_file) {
            (Some(_), Some(_)) => Err(DashboardError::TwoAuths),
            (Some(path), None) => {
                let token = read(path)?;
                if token.len() < 16 {
                    return Err(DashboardError::AuthFile {
                        path: path.display().to_string(),
                        why: "the token is shorter than 16 characters; make one with `openssl rand -hex 32`".into(),
                    });
                }
                Ok(Auth::Bearer(Secret::new(token)))
            }
            (None, Some(path)) => {
                let line = read(path)?;
                match line.split_once(':') {
                    Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                        Ok(Auth::Basic(Secret::new(line)))
                    }
                    _ => Err(DashboardError::AuthFile {
                        path: path.display().to_string(),
                        why: "it must hold `user:password`".into(),
                    }),
                }
            }
            (None, None) => Ok(Auth::Open),
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Auth::Open)
    }

    /// The scheme's name, for the page's script and the `WWW-Authenticate` header.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            Auth::Open => None,
            Auth::Bearer(_) => Some("bearer"),
            Auth::Basic(_) => Some("basic"),
        }
    }

    /// Whether an `Authorization` header value proves access.
    pub fn allows(&self, header: Option<&str>) -> bool {
        let same = |given: &[u8], secret: &Secret| bool::from(given.ct_eq(secret.expose().as_bytes()));
        match self {
            Auth::Open => true,
            Auth::Bearer(token) => {
                header.and_then(|h| strip_scheme(h, "bearer")).is_some_and(|given| same(given.trim().as_bytes(), token))
            }
            Auth::Basic(pair) => header.and_then(|h| strip_scheme(h, "basic")).is_some_and(|given| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(given.trim()).is_ok_and(|decoded| same(&decoded, pair))
            }),
        }
    }
}

/// The credentials after `<scheme> `, the scheme's case ignored as HTTP says.
fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_are_checked_whole() {
        let bearer = Auth::Bearer(Secret::new("0123456789abcdef0123"));
        assert!(bearer.allows(Some("Bearer 0123456789abcdef0123")));
        assert!(bearer.allows(Some("bearer 0123456789abcdef0123")));
        assert!(!bearer.allows(Some("Bearer 0123456789abcdef012")));
        assert!(!bearer.allows(Some("Bearer 0123456789abcdef01234")));
        assert!(!bearer.allows(Some("Basic 0123456789abcdef0123")));
        assert!(!bearer.allows(None));
        let basic = Auth::Basic(Secret::new("ops:s3cret"));
        assert!(basic.allows(Some("Basic b3BzOnMzY3JldA==")));
        assert!(!basic.allows(Some("Basic b3BzOnMzY3JldB==")));
        assert!(!basic.allows(Some("Basic !!!")));
        assert!(Auth::Open.allows(None));
    }

    #[test]
    fn files_are_validated_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let e = Auth::from_files(Some(&short), None).err().unwrap().to_string();
        assert!(e.contains("shorter than 16") && !e.contains("abc"), "{e}");
        let basic = dir.path().join("basic");
        std::fs::write(&basic, "nopassword\n").unwrap();
        let e = Auth::from_files(None, Some(&basic)).err().unwrap().to_string();
        assert!(e.contains("user:password") && !e.contains("nopassword"), "{e}");
        assert!(matches!(Auth::from_files(Some(&short), Some(&basic)), Err(DashboardError::TwoAuths)));
        std::fs::write(&basic, "ops:pw\n").unwrap();
        assert_eq!(Auth::from_files(None, Some(&basic)).unwrap().scheme(), Some("basic"));
    }
}
