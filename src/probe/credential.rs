//! The one rule for what is a secret and how it is masked: which request and response headers
//! carry credentials (monitors mask their values in every output, and redirects drop them when
//! they leave the origin), which parts of a URL are secret, and masking them in what is shown.
//! Here, in the probe (which imports nothing of the crate), so every module can use it.

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

/// What a masked value shows.
pub const MASK: &str = "****";

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

/// Removes every occurrence of a secret's sensitive parts from `text`: the whole value (shown
/// [`mask`]ed), and its URL password and secret query values raw, percent-decoded and
/// percent-encoded (as a client or a server may echo them).
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let raw = secret;
    let mut out = text.replace(raw, &mask(raw));
    for part in sensitive_parts(raw) {
        out = out.replace(part, MASK);
        // As a client decodes a URL's password or query value: percent escapes, `+` kept.
        if let Ok(decoded) = percent_encoding::percent_decode_str(part).decode_utf8() {
            if !decoded.is_empty() {
                out = out.replace(decoded.as_ref(), MASK);
            }
        }
    }
    // The whole value as a form or a URL would carry it (a value sent in a query string).
    let form: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    let percent = percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string();
    for encoded in [form, percent] {
        if encoded != raw {
            out = out.replace(&encoded, MASK);
        }
    }
    out
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
