//! Following a redirect: where to, with which method and body, and which of
//! the request's headers may go along.
//!
//! Credentials stay with their origin: on a redirect to another origin
//! (scheme, host or port differ) the spec's auth and every header that
//! [`is_credential_header`] names are dropped; only the others follow.

use url::Url;

use super::Auth;
use crate::probe::credential::is_credential_header;
use crate::probe::{Failure, FailureKind};

/// Statuses that redirect (with a `Location`).
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

fn shorten(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The request a hop makes.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    pub url: Url,
    pub method: String,
    pub body: Option<Vec<u8>>,
    pub auth: Auth,
    pub headers: Vec<(String, String)>,
}

impl Hop {
    /// The hop that follows a `status` response with `location`.
    pub(crate) fn follow(&self, status: u16, location: &str) -> Result<Hop, Failure> {
        let next = self.url.join(location).map_err(|e| {
            Failure::new(FailureKind::Protocol, format!("invalid redirect Location `{}`: {e}", shorten(location, 200)))
        })?;
        if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none() {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("redirect to unsupported URL `{}`", shorten(next.as_str(), 200)),
            ));
        }
        let mut hop = Hop { url: next, ..self.clone() };
        if status == 303 || (matches!(status, 301 | 302) && self.method == "POST") {
            if self.method != "HEAD" {
                hop.method = "GET".into();
            }
            hop.body = None;
        }
        if !same_origin(&self.url, &hop.url) {
            hop.auth = Auth::None;
            hop.headers.retain(|(name, _)| !is_credential_header(name));
        }
        Ok(hop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_with_their_origin() {
        let hop = Hop {
            url: Url::parse("https://a.example/x").unwrap(),
            method: "GET".into(),
            body: None,
            auth: Auth::Bearer("t".into()),
            headers: vec![
                ("X-Api-Key".into(), "k".into()),
                ("Cookie".into(), "c".into()),
                ("X-Session-Id".into(), "s".into()),
                ("X-Trace".into(), "1".into()),
            ],
        };
        let same = hop.follow(302, "/y").unwrap();
        assert_eq!(same.headers.len(), 4);
        assert_eq!(same.auth, Auth::Bearer("t".into()));
        let other = hop.follow(302, "https://b.example/y").unwrap();
        assert_eq!(other.auth, Auth::None);
        assert_eq!(other.headers, vec![("X-Trace".to_string(), "1".to_string())]);
        let other_port = hop.follow(307, "https://a.example:8443/y").unwrap();
        assert_eq!(other_port.headers.len(), 1);
        let post = Hop { method: "POST".into(), body: Some(b"x".to_vec()), ..hop };
        let after_303 = post.follow(303, "/z").unwrap();
        assert_eq!((after_303.method.as_str(), after_303.body), ("GET", None));
        assert_eq!(post.follow(308, "/z").unwrap().body, Some(b"x".to_vec()));
    }
}
