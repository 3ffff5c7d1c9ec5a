//! The shell scripts under `scripts/`: none ends without saying what failed.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every entry script (an executable file in `scripts/`) sources `scripts/lib/services.sh`, which
/// holds the ERR trap, before anything can fail; under `set -euo pipefail` a script without it
/// ends silently on the first failing command (as the first quickstart on a fresh machine did).
#[test]
fn every_entry_script_gets_the_failure_report() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("scripts")).unwrap().flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let strict = lines.iter().position(|l| *l == "set -euo pipefail");
        let sourced = lines.iter().position(|l| *l == "source scripts/lib/services.sh");
        // Between the two only comments and the move to the repository's root.
        let before = |s: usize, l: usize| {
            lines[s + 1..l].iter().all(|l| l.is_empty() || l.starts_with('#') || *l == r#"cd "$(dirname "$0")/..""#)
        };
        assert!(
            matches!((strict, sourced), (Some(s), Some(l)) if l > s && before(s, l)),
            "{} must `set -euo pipefail` and then `source scripts/lib/services.sh` before it runs anything",
            path.display()
        );
        checked.push(path);
    }
    assert!(checked.len() >= 3, "scripts/quickstart, scripts/test and scripts/bench at least: {checked:?}");
}

/// A failing command, in a function of a sourced file called from the script, is reported with
/// the script's name, the file and line, the line's text and the call chain; a failure the script
/// handles, or one inside a `$(…)` whose caller goes on, stays quiet.
#[test]
fn a_failing_command_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib.sh");
    std::fs::write(&lib, "fetch() {\n  false | cat\n}\n").unwrap();
    let script = dir.path().join("deploy-thing");
    std::fs::write(
        &script,
        format!(
            "set -euo pipefail\nsource {ROOT}/scripts/lib/services.sh\nsource {}\n\
             if ! fetch; then echo handled; fi\nquiet=$(false; echo ok)\nfetch\necho never\n",
            lib.display()
        ),
    )
    .unwrap();
    let out = Command::new("bash").arg(&script).current_dir(dir.path()).output().expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "handled\n");
    let lib_line = format!("deploy-thing: failed (exit 1) at {}:2: false | cat", lib.display());
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [lib_line, format!("  in fetch, called from {}:6", script.display())],
        "{stderr}"
    );
}
