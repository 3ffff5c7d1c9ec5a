//! Exit codes: every error says its own.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the command ran and failed (a service unreachable, a write refused; for `probe` and `monitor check`: the target is down) |
//! | 2 | bad input: fix the command line, the config or the file; nothing was changed |
//! | 3 | `probe` and `monitor check` only: could not check or record (database, Redis, internal) |
//!
//! # How the code travels
//!
//! Commands return [`Result`], whose error is a [`Failure`]: the error's chain (kept in `anyhow`
//! for its context and messages) and the exit code, decided when the error became a `Failure`.
//! `?` makes a `Failure` only out of a type that implements [`Coded`]; `Failure` has no
//! `From<anyhow::Error>` on purpose, so an error whose code nobody chose does not compile rather
//! than silently exiting 1. This module therefore knows no error type of the crate: no list to
//! keep in step, no scan of the source. (Reading the code back out of a `dyn Error` chain would
//! need a downcast to every concrete type, the list this replaces; `Error::provide` is unstable.)
//!
//! # Adding an error type (every module follows this)
//!
//! 1. Domain errors are `thiserror` types. Right under the type, implement [`Coded`]:
//!    ```ignore
//!    impl crate::error::Coded for QueueError {
//!        fn exit(&self) -> Exit {
//!            match self {
//!                QueueError::UnknownQueue(_) => Exit::Input,
//!                QueueError::Redis(_) => Exit::Failed,
//!            }
//!        }
//!    }
//!    ```
//!    Prefer an exhaustive `match` (no `_` arm), so a new variant must be given its code too.
//!    That is all: `?` in a command now carries the code. A library's error type that reaches
//!    commands bare gets its impl once, beside the module that wraps the library.
//! 2. In commands, use `?` and this module's [`Context`] (`anyhow::Context` gives an
//!    `anyhow::Error`, which does not become a `Failure`). Ad-hoc bad input: [`input_error`]; an
//!    ad-hoc failure: [`failed`]. A code that depends on the command rather than the error:
//!    [`Failure::new`] or [`Failure::with_exit`].

use std::fmt;

/// A process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The command ran and failed; for `probe` and `monitor check`, the target is down.
    Failed = 1,
    /// The input was wrong: fix the command line, the config or the file.
    Input = 2,
    /// `probe` and `monitor check`: the check could not run or not be recorded.
    Unchecked = 3,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Success.
pub const EXIT_OK: i32 = Exit::Ok as i32;
/// The command ran and failed (service unreachable, probe down, …).
pub const EXIT_FAILURE: i32 = Exit::Failed as i32;
/// The input was wrong: fix the command line, the config or the file.
pub const EXIT_USAGE: i32 = Exit::Input as i32;
/// `probe` / `monitor check` could not check or record.
pub const EXIT_UNCHECKED: i32 = Exit::Unchecked as i32;

/// An error that says which exit code it ends the process with.
pub trait Coded: std::error::Error + Send + Sync + 'static {
    fn exit(&self) -> Exit;
}

/// What a command returns.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// A command's error: what went wrong, with its context, and the exit code it ends the process
/// with. Made by `?` from any [`Coded`] error, or by [`failed`], [`input_error`], [`Failure::new`].
pub struct Failure {
    exit: Exit,
    error: anyhow::Error,
}

impl<E: Coded> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure { exit: error.exit(), error: anyhow::Error::new(error) }
    }
}

impl Failure {
    /// `error`, ending the process with `exit` whatever it is.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure { exit, error: error.into() }
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The same error, ending the process with `exit`.
    pub fn with_exit(self, exit: Exit) -> Self {
        Failure { exit, ..self }
    }

    /// The message, then each cause below it.
    pub fn chain(&self) -> anyhow::Chain<'_> {
        self.error.chain()
    }

    /// The same error and code, under one more message.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Self {
        Failure { exit: self.exit, error: self.error.context(context) }
    }
}

/// Prints as the error it holds (`{:#}`: with its causes).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (exit {})", self.error, self.exit.code())
    }
}

/// `.context()` for commands: adds a message and keeps the exit code of what it wraps.
pub trait Context<T> {
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T>;
    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

/// A missing value is a failure saying `context`.
impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.ok_or_else(|| failed(context))
    }

    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| failed(context()))
    }
}

/// A [`Coded`] error of a higher layer, inside the error of a lower one that must not name its
/// type: the lower layer was handed a callback of the higher one (`monitor apply` writes alert
/// settings through alerting's writer). It shows, chains and exits as the error it holds.
pub struct Carried(Box<dyn Coded>);

impl Carried {
    pub fn new(error: impl Coded) -> Self {
        Carried(Box::new(error))
    }
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Coded for Carried {
    fn exit(&self) -> Exit {
        self.0.exit()
    }
}

/// An error caused by what the user asked for. Its message says what is wrong
/// and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

impl Coded for InputError {
    fn exit(&self) -> Exit {
        Exit::Input
    }
}

/// Bad input noticed by a command: exit 2 with `message`.
pub fn input_error(message: impl Into<String>) -> Failure {
    InputError(message.into()).into()
}

/// A failure noticed by a command (not an error of a library or domain type): exit 1 with `message`.
pub fn failed(message: impl fmt::Display) -> Failure {
    Failure::new(Exit::Failed, anyhow::Error::msg(message.to_string()))
}

/// An I/O error (a file, stdin, stdout) is a failure, not bad input: a command that can tell
/// (a path the user gave that does not exist) says so with [`input_error`] first.
impl Coded for std::io::Error {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// "The target is down": exit 1 for `probe` and `monitor check`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetDown(pub String);

impl Coded for TargetDown {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// For `probe` and `monitor check`, where 1 means "the target is down": any other failure
/// (database, Redis, internal) becomes 3; bad input stays 2.
pub fn checking<T>(result: Result<T>) -> Result<T> {
    result.map_err(|failure| {
        let down = failure.chain().any(|cause| cause.is::<TargetDown>());
        if !down && failure.exit == Exit::Failed {
            failure.with_exit(Exit::Unchecked)
        } else {
            failure
        }
    })
}

/// An error and each of its sources, joined with ": " (libraries often keep the useful part, the
/// cause or the line, in a source their own message leaves out).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("store down")]
    struct StoreDown;

    impl Coded for StoreDown {
        fn exit(&self) -> Exit {
            Exit::Failed
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad monitor")]
    struct BadMonitor;

    impl Coded for BadMonitor {
        fn exit(&self) -> Exit {
            Exit::Input
        }
    }

    fn command(bad: bool) -> Result<()> {
        if bad {
            Err(BadMonitor)?
        }
        Err(StoreDown)?
    }

    #[test]
    fn question_mark_carries_the_code_and_context_keeps_it() {
        let err = command(true).context("creating monitor").unwrap_err();
        assert_eq!(err.exit(), Exit::Input);
        assert_eq!(format!("{err:#}"), "creating monitor: bad monitor");
        assert_eq!(command(false).with_context(|| "creating").unwrap_err().exit(), Exit::Failed);
        let err = Err::<(), _>(input_error("bad region")).context("creating monitor").unwrap_err();
        assert_eq!(err.exit(), Exit::Input);
    }

    #[test]
    fn ad_hoc_failures_and_missing_values_are_exit_1() {
        assert_eq!(failed("connection refused").context("connecting").exit(), Exit::Failed);
        let err = None::<u8>.context("the path names no file").unwrap_err();
        assert_eq!((err.exit(), err.to_string().as_str()), (Exit::Failed, "the path names no file"));
    }

    #[test]
    fn checks_exit_1_when_down_3_when_unchecked_2_on_bad_input() {
        let down: Result<()> = Err(TargetDown("https://example.com/ is down".into()).into());
        assert_eq!(checking(down).unwrap_err().exit(), Exit::Failed);
        let db: Result<()> = Err(failed("pool timed out").context("recording"));
        let err = checking(db).unwrap_err();
        assert_eq!(err.exit(), Exit::Unchecked);
        assert_eq!(format!("{err:#}"), "recording: pool timed out", "the code changes, the message does not");
        let bad: Result<()> = Err(input_error("bad target"));
        assert_eq!(checking(bad).unwrap_err().exit(), Exit::Input);
    }
}
