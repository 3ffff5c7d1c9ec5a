//! The one rule for which request headers carry credentials. The probe keeps
//! them with their origin (a cross-origin redirect drops them) and every
//! output masks their values; both ask [`is_credential_header`].

/// Whole names (lower-case) that carry credentials.
const NAMES: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-apikey",
    "x-auth",
    "x-access-key",
    "x-amz-security-token",
];

/// Name prefixes (lower-case) that carry credentials: `X-Session-Id`, `X-Signature`, `X-Auth-User`, ...
const PREFIXES: &[&str] = &["x-session", "x-signature", "x-auth-", "x-csrf", "x-xsrf"];

/// Name suffixes (lower-case) that carry credentials: `X-Access-Token`, `X-Client-Secret`, ...
const SUFFIXES: &[&str] = &[
    "-token",
    "-secret",
    "-password",
    "-passwd",
    "-api-key",
    "-apikey",
    "-access-key",
    "-signature",
    "-credential",
    "-credentials",
];

/// Whether a header of this name carries a credential (case-insensitive).
pub fn is_credential_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    NAMES.contains(&name.as_str())
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_name_prefix_and_suffix() {
        for name in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "x-session",
            "X-Session-Id",
            "X-Signature",
            "X-Access-Token",
            "X-Client-Secret",
            "Proxy-Authorization",
            "X-Auth-User",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in ["Accept", "User-Agent", "X-Request-Id", "Content-Type", "Tokenizer", "X-Probe"] {
            assert!(!is_credential_header(name), "{name}");
        }
    }
}
