//! Stored text: every free-text field has a length limit and no control characters, checked on
//! input with a message that states the limit. (A 100,000-character region name made
//! `region list` 656 KB; an escape sequence in a name could retitle an operator's terminal.)
//! Also the syntax of region codes, which both `config` and `region` check.

/// Longest region name and city.
pub const MAX_REGION_NAME: usize = 100;
/// Longest per-region notes.
pub const MAX_NOTES: usize = 1000;
/// Longest keyword an HTTP check looks for.
pub const MAX_KEYWORD: usize = 1000;
/// Longest expected DNS answer.
pub const MAX_ANSWER: usize = 255;
/// Longest header value.
pub const MAX_HEADER_VALUE: usize = 8192;
/// Longest target URL.
pub const MAX_TARGET: usize = 2048;

/// `value` is at most `max` characters and holds no control characters; the error names the
/// field and the limit ("region name must be at most 100 characters (it has 100000)").
pub fn check(field: &str, value: &str, max: usize) -> Result<(), String> {
    let count = value.chars().count();
    if count > max {
        return Err(format!("{field} must be at most {max} characters (it has {count})"));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("{field} must not contain control characters (found U+{:04X})", c as u32));
    }
    Ok(())
}

/// A region code that breaks the rule of [`region_code`]; it quotes at most what a valid code could
/// hold, so a huge input is not repeated back.
#[derive(Debug, thiserror::Error)]
#[error("invalid region code `{0}`: use 2-50 characters, lowercase letters, digits and '-', starting with a letter (e.g. eu-west)")]
pub struct InvalidRegionCode(String);

/// Region codes: `^[a-z][a-z0-9-]{1,49}$`. Codes name queues, stacks and per-region settings
/// (`REDIS_URL_<R>`), so `config` checks them as well as `region`; the rule lives here, below both.
pub fn region_code(code: &str) -> Result<(), InvalidRegionCode> {
    let mut chars = code.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && (2..=50).contains(&code.len()) {
        Ok(())
    } else {
        let shown: String = code.chars().take(50).collect();
        let ellipsis = if code.chars().count() > 50 { "…" } else { "" };
        Err(InvalidRegionCode(format!("{shown}{ellipsis}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_control_characters_are_stated() {
        assert!(check("region name", "US East (N. Virginia)", MAX_REGION_NAME).is_ok());
        let err = check("region name", &"x".repeat(100_000), MAX_REGION_NAME).unwrap_err();
        assert_eq!(err, "region name must be at most 100 characters (it has 100000)");
        let err = check("region name", "evil\u{1b}]0;owned\u{7}", MAX_REGION_NAME).unwrap_err();
        assert!(err.contains("control characters") && err.contains("U+001B"), "{err}");
    }
}
