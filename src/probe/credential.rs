//! The one rule for which request and response headers carry credentials. Monitors mask their
//! values in every output, and redirects drop them when they leave the origin.

/// Whether a header named `name` (any case) carries a credential: `Authorization`,
/// `Proxy-Authorization`, cookies, API keys (`X-Api-Key`, any `…-Key`), tokens, secrets,
/// passwords, sessions, signatures and anything with `auth` in its name. Errs on the side of
/// masking: hiding a harmless value costs less than showing a secret.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    const PARTS: [&str; 11] = [
        "auth",
        "cookie",
        "token",
        "secret",
        "passw",
        "session",
        "signature",
        "credential",
        "apikey",
        "private",
        "jwt",
    ];
    PARTS.iter().any(|part| name.contains(part)) || name.split(['-', '_']).any(|word| word == "key")
}

#[cfg(test)]
mod tests {
    use super::is_credential_header;

    #[test]
    fn credentials_are_recognised_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "Set-Cookie",
            "X-Api-Key",
            "x-goog-api-key",
            "Ocp-Apim-Subscription-Key",
            "X-Access-Key-Id",
            "X-Auth-Token",
            "X-Amz-Security-Token",
            "X-CSRF-Token",
            "X-Client-Secret",
            "X-Session-Id",
            "X-Signature",
            "X-Hub-Signature-256",
            "X-Custom-Auth",
            "X-Password",
            "X-DB-Passwd",
            "X-Credentials",
            "X-Private-Token",
            "X-ApiKey",
            "api_key",
            "Key",
            "  authorization ",
        ] {
            assert!(is_credential_header(name), "{name} carries a credential");
        }
    }

    #[test]
    fn ordinary_headers_are_not_credentials() {
        for name in
            ["Accept", "User-Agent", "Content-Type", "Host", "Keep-Alive", "X-Monkey", "X-Request-Id", "Cache-Control"]
        {
            assert!(!is_credential_header(name), "{name} is not a credential");
        }
    }
}
