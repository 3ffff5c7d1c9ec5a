//! Exit codes: every error says its own.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the command ran and failed (a service unreachable, a write refused; for `probe` and `monitor check`: the target is down) |
//! | 2 | bad input: fix the command line, the config or the file; nothing was changed |
//! | 3 | `probe` and `monitor check` only: could not check or record (database, Redis, internal) |
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
//! 2. Add the type to the [`coded!`] list below. A unit test reads `src/` and fails, naming the
//!    file, for any error type (`thiserror::Error` derive or `impl std::error::Error`) that is not
//!    in the list, and the list only compiles with types that implement [`Coded`].
//! 3. In commands, use `anyhow` and `.context()` as usual. Ad-hoc bad input: [`input_error`].
//!    A code that depends on the command rather than the error: [`with_exit`].
//!
//! # Why a list and a test rather than only a trait
//!
//! Commands carry errors as `anyhow::Error`, and `?` turns any `std::error::Error` into one
//! without asking for a code. The only thing stable Rust can ask of a `&dyn Error` in the chain is
//! "are you this concrete type?" (`Error::provide`, which would let an error hand out a trait
//! object, is unstable). So the code comes from the [`Coded`] impl, looked up through one list of
//! types; the compiler checks each listed type says its code, and the test checks nothing is
//! missing from the list. Making commands return a crate error type instead would have forced a
//! classification on every `?` of an I/O or SQL error in every command for the same guarantee.
//!
//! The outermost error of the chain that has a code decides, so context added later (such as
//! [`with_exit`] or [`checking`]) can override the code of what it wraps.

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

/// Every error type of the crate, each with its [`Coded`] impl. Generates the one lookup
/// [`code_of`] and the list of names the completeness test checks.
macro_rules! coded {
    ($($ty:ty),+ $(,)?) => {
        fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<Exit> {
            $(
                if let Some(e) = cause.downcast_ref::<$ty>() {
                    return Some(Coded::exit(e));
                }
            )+
            None
        }

        #[cfg(test)]
        const CODED_TYPES: &[&str] = &[$(stringify!($ty)),+];
    };
}

coded![
    Error,
    InputError,
    TargetDown,
    crate::config::ConfigError,
    crate::store::StoreError,
    crate::store::partition::PartitionError,
    crate::store::partition::PruneError,
    crate::region::RegionError,
    crate::monitor::MonitorError,
    crate::probe::TargetError,
    crate::probe::resolve::ResolveError,
    crate::probe::StatusRangesError,
    crate::queue::QueueError,
    crate::results::summary::RebuildError,
    crate::agent::AgentError,
    crate::agent::job::JobError,
    crate::stack::StackError,
    crate::swarm::SwarmError,
    crate::aws::AwsError,
    crate::dns::DnsError,
    crate::backup::BackupError,
    crate::geo::GeoError,
    crate::synthetic::ScriptError,
    crate::alert::AlertError,
    crate::notify::NotifyError,
    crate::dashboard::DashboardError,
    crate::dashboard::range::RangeError,
    crate::dashboard::statuspage::StatusPageError,
];

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

/// Shorthand for building an [`InputError`] inside `anyhow` code.
pub fn input_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}

/// An error given its code by the command that saw it, not by its type. It prints as the error
/// it wraps, and the chain below it stays the same.
#[derive(Debug)]
pub struct Error {
    exit: Exit,
    inner: anyhow::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.chain().nth(1)
    }
}

impl Coded for Error {
    fn exit(&self) -> Exit {
        self.exit
    }
}

/// `err`, ending the process with `exit`.
pub fn with_exit(exit: Exit, err: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Error { exit, inner: err })
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
pub fn checking<T>(result: anyhow::Result<T>) -> anyhow::Result<T> {
    result.map_err(|err| {
        let down = err.chain().any(|cause| cause.is::<TargetDown>());
        if !down && exit_of(&err) == Exit::Failed {
            with_exit(Exit::Unchecked, err)
        } else {
            err
        }
    })
}

/// The exit code for an error that reached `main`: the outermost coded error decides; an
/// error with no coded cause at all is a failure.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    err.chain().find_map(code_of).unwrap_or(Exit::Failed)
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

/// [`exit_of`] as the process's number.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    exit_of(err).code()
}

// `src/probe` imports nothing of the crate, so its errors get their codes here.

impl Coded for crate::probe::TargetError {
    fn exit(&self) -> Exit {
        Exit::Input
    }
}

impl Coded for crate::probe::StatusRangesError {
    fn exit(&self) -> Exit {
        Exit::Input
    }
}

/// Only reached when resolving is a step of a command (not a probe's own result, which
/// records the failure instead of returning it).
impl Coded for crate::probe::resolve::ResolveError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_exit_2_even_behind_context() {
        let err = input_error("bad region").context("creating monitor");
        assert_eq!(exit_code(&err), EXIT_USAGE);
    }

    #[test]
    fn other_errors_are_exit_1() {
        let err = anyhow::anyhow!("connection refused").context("connecting");
        assert_eq!(exit_code(&err), EXIT_FAILURE);
    }

    #[test]
    fn domain_errors_say_their_code_through_wrappers() {
        let region = crate::region::RegionError::EmptyName;
        let err = anyhow::Error::new(crate::monitor::MonitorError::Region(region)).context("creating");
        assert_eq!(exit_of(&err), Exit::Input);
        let err = anyhow::Error::new(crate::store::StoreError::Migrate("x".into()));
        assert_eq!(exit_of(&err), Exit::Failed);
    }

    #[test]
    fn checks_exit_1_when_down_3_when_unchecked_2_on_bad_input() {
        let down: anyhow::Result<()> = Err(TargetDown("https://example.com/ is down".into()).into());
        assert_eq!(exit_of(&checking(down).unwrap_err()), Exit::Failed);
        let db: anyhow::Result<()> = Err(anyhow::anyhow!("pool timed out").context("recording"));
        let err = checking(db).unwrap_err();
        assert_eq!(exit_of(&err), Exit::Unchecked);
        assert_eq!(format!("{err:#}"), "recording: pool timed out", "the wrapper prints as what it wraps");
        let bad: anyhow::Result<()> = Err(input_error("bad target"));
        assert_eq!(exit_of(&checking(bad).unwrap_err()), Exit::Input);
    }

    /// Every error type in `src/` is in the [`coded!`] list, so none silently exits 1.
    #[test]
    fn every_error_type_says_its_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let listed: Vec<&str> =
            CODED_TYPES.iter().map(|path| path.rsplit("::").next().unwrap_or(path).trim()).collect();
        let mut missing = Vec::new();
        for (path, text) in rust_files(&root) {
            for name in error_types(&text) {
                if !listed.contains(&name.as_str()) {
                    missing.push(format!("{name} ({})", path.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "error types without an exit code: {}; implement crate::error::Coded for each and add it to \
             `coded!` in src/error.rs",
            missing.join(", ")
        );
    }

    fn rust_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is readable");
                files.push((path, text));
            }
        }
        files
    }

    /// Names of the types a file derives `thiserror::Error` for or implements `std::error::Error` for.
    fn error_types(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("#[derive(") && (line.contains("thiserror::Error") || line.contains(" Error)")) {
                let decl = lines[i + 1..].iter().find(|l| !l.starts_with("#[") && !l.starts_with("///"));
                if let Some(name) = decl.and_then(|l| declared_name(l)) {
                    names.push(name);
                }
            }
            for prefix in ["impl std::error::Error for ", "impl Error for "] {
                if let Some(rest) = line.strip_prefix(prefix) {
                    names.push(rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("").into());
                }
            }
        }
        names
    }

    fn declared_name(line: &str) -> Option<String> {
        let mut words = line.split_whitespace().skip_while(|w| !matches!(*w, "struct" | "enum"));
        words.next()?;
        let name = words.next()?;
        Some(name.split(|c: char| !c.is_alphanumeric() && c != '_').next()?.to_string())
    }

    #[test]
    fn the_completeness_test_finds_error_types() {
        // Built from pieces so this file's own lines do not declare `Bar`.
        let text = [
            "#[derive(Debug, thiserror::Error)]\n#[error(\"x\")]\npub struct Foo<T>(T);",
            "impl std::error::Error for Bar {}",
            "#[derive(Debug)]\nenum NotAnError {}",
        ]
        .join("\n");
        assert_eq!(error_types(&text), ["Foo", "Bar"]);
    }
}
