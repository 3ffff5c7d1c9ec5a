//! The request of one hop: method, target, default and user headers, auth, body.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::Full;
use url::{Position, Url};

use super::transport::Wire;
use super::Auth;
use crate::probe::{Failure, FailureKind};

const USER_AGENT: &str = concat!("geoctl-probe/", env!("CARGO_PKG_VERSION"));
/// The content codings the response reader decodes (see [`super::response`]).
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

fn invalid_spec(msg: impl Into<String>) -> Failure {
    Failure::new(FailureKind::Other, msg)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// A URL's user or password as sent: percent-decoded (`+` stays `+`, as in any part of a URL
/// but a form's query), an invalid escape kept as it is.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The `Authorization` value the spec asks for, if any.
fn authorization(url: &Url, auth: &Auth) -> Option<String> {
    match auth {
        Auth::None if !url.username().is_empty() => {
            let creds = format!("{}:{}", percent_decode(url.username()), percent_decode(url.password().unwrap_or("")));
            Some(format!("Basic {}", base64(creds.as_bytes())))
        }
        Auth::None => None,
        Auth::Basic { user, pass } => Some(format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))),
        Auth::Bearer(token) => Some(format!("Bearer {token}")),
    }
}

/// The request for `url`. HTTP/1.1 gets `Host` and `Connection: close`;
/// HTTP/2 carries the host in `:authority` (a user `Host` header becomes it)
/// and no connection-specific headers.
pub(crate) fn build(
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    auth: &Auth,
    wire: Wire,
) -> Result<http::Request<Full<Bytes>>, Failure> {
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| invalid_spec(format!("invalid HTTP method `{method}`")))?;
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    // The host and the port when not the scheme's default, as the URL writes them.
    let host = &url[Position::BeforeHost..Position::AfterPort];
    let user_host = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map(|(_, v)| v.trim().to_string());
    let path = &url[Position::BeforePath..Position::AfterQuery];
    let path = if path.is_empty() { "/" } else { path };
    let uri = match wire {
        Wire::Http1 => path.to_string(),
        Wire::Http2 => format!("{}://{}{path}", url.scheme(), user_host.as_deref().unwrap_or(host)),
    };
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(uri.as_str())
        .version(if wire == Wire::Http2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 });
    let map = builder.headers_mut().ok_or_else(|| invalid_spec(format!("invalid request target `{uri}`")))?;
    // The headers every check sends are names and values known at compile time: appended as they
    // are, not parsed and checked again for every check. Only what comes from the monitor is.
    let value = |name: &str, value: &str| {
        HeaderValue::from_str(value).map_err(|_| invalid_spec(format!("header `{name}` has an invalid value")))
    };
    if wire == Wire::Http1 && user_host.is_none() {
        map.append(header::HOST, value("Host", host)?);
    }
    if !has("user-agent") {
        map.append(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    if !has("accept") {
        map.append(header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    if !has("accept-encoding") {
        map.append(header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPT_ENCODING));
    }
    if !has("authorization") || !matches!(auth, Auth::None) {
        if let Some(credentials) = authorization(url, auth) {
            if credentials.contains(['\r', '\n']) {
                return Err(invalid_spec("the credentials contain a line break"));
            }
            map.append(header::AUTHORIZATION, value("Authorization", &credentials)?);
        }
    }
    for (n, v) in headers {
        let managed = ["connection", "content-length", "transfer-encoding"].iter().any(|m| n.eq_ignore_ascii_case(m));
        if managed || (wire == Wire::Http2 && n.eq_ignore_ascii_case("host")) {
            continue; // set by the probe (or by the framing)
        }
        let name =
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| invalid_spec(format!("invalid header name `{n}`")))?;
        map.append(name, value(n, v)?);
    }
    if wire == Wire::Http1 {
        map.append(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let needs_len = body.is_some() || [http::Method::POST, http::Method::PUT, http::Method::PATCH].contains(&method);
    if needs_len {
        map.append(header::CONTENT_LENGTH, HeaderValue::from(body.map_or(0, <[u8]>::len)));
    }
    let body = Full::new(body.map(Bytes::copy_from_slice).unwrap_or_default());
    builder.body(body).map_err(|e| invalid_spec(format!("invalid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("x%zz"), "x%zz");
    }

    #[test]
    fn request_shape() {
        let url = Url::parse("http://u:p%40ss@example.com:8080/a?b=1#frag").unwrap();
        let req = build(&url, "POST", &[("X-Test".into(), "1".into())], Some(b"hi"), &Auth::None, Wire::Http1).unwrap();
        assert_eq!(req.uri(), "/a?b=1");
        let h = req.headers();
        assert_eq!(h.keys().next().unwrap(), "host");
        assert_eq!(h["host"], "example.com:8080");
        assert_eq!(h["authorization"], "Basic dTpwQHNz");
        assert_eq!(h["x-test"], "1");
        assert_eq!(h["connection"], "close");
        assert_eq!(h["content-length"], "2");
        assert_eq!(h["accept-encoding"], ACCEPT_ENCODING);
        assert!(build(&url, "GET", &[("X".into(), "a\r\nb".into())], None, &Auth::None, Wire::Http1).is_err());
        assert!(build(&url, "G T", &[], None, &Auth::None, Wire::Http1).is_err());

        // The Host header: the port only when not the scheme's default, an IPv6 address bracketed.
        for (url, host) in [
            ("https://example.com:443/", "example.com"),
            ("http://[::1]:8080/", "[::1]:8080"),
            ("http://[::1]/", "[::1]"),
        ] {
            let req = build(&Url::parse(url).unwrap(), "GET", &[], None, &Auth::None, Wire::Http1).unwrap();
            assert_eq!(req.headers()["host"], host, "{url}");
            assert!(req.headers().get("content-length").is_none(), "a GET without a body has no length");
        }

        let h2 = build(&url, "GET", &[], None, &Auth::None, Wire::Http2).unwrap();
        assert_eq!(h2.uri(), "http://example.com:8080/a?b=1");
        assert!(h2.headers().get("host").is_none() && h2.headers().get("connection").is_none());
    }
}
