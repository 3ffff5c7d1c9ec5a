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

/// The cost mode's callgrind helpers (`scripts/lib/bench_cost.sh`) read a real profile, of
/// geoctl itself, as this machine's valgrind writes it: the instructions in all, and the top
/// functions by inclusive and by self instructions with their names. `scripts/bench probe --cost`
/// and `queue --cost` print nothing else from a profile, and a valgrind whose output they no
/// longer read must fail here rather than in a bench run of many minutes. (scripts/test installs
/// valgrind; without it this fails.)
#[test]
fn the_cost_modes_callgrind_helpers_read_a_real_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("geoctl.out");
    let script = format!(
        "set -euo pipefail\nsource {ROOT}/scripts/lib/services.sh\nsource {ROOT}/scripts/lib/bench_cost.sh\n\
         $(callgrind_cmd {p}) {geoctl} --version >/dev/null\n\
         echo \"total $(callgrind_total {p})\"\n\
         echo \"per $(per_unit \"$(callgrind_total {p})\" 1000 10)\"\n\
         echo inclusive; callgrind_top {p} 5\n\
         echo self; callgrind_top {p} 5 no\n",
        p = profile.display(),
        geoctl = env!("CARGO_BIN_EXE_geoctl"),
    );
    let out = Command::new("bash").arg("-c").arg(&script).current_dir(dir.path()).output().expect("run bash");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "needs valgrind (scripts/test installs it): {stderr}\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let total: u64 = lines[0].strip_prefix("total ").and_then(|t| t.parse().ok()).expect(&stdout);
    assert!(total > 100_000, "{stdout}");
    let per: f64 = lines[1].strip_prefix("per ").and_then(|t| t.parse().ok()).expect(&stdout);
    assert!((per - (total - 1000) as f64 / 10.0).abs() <= 1.0, "{stdout}");
    let section = |name: &str| -> Vec<(f64, u64, String)> {
        let start = lines.iter().position(|l| *l == name).expect(&stdout) + 1;
        lines[start..]
            .iter()
            .take_while(|l| !["inclusive", "self"].contains(l))
            .map(|l| {
                let mut words = l.split_whitespace();
                let share = words.next().and_then(|s| s.strip_suffix('%')).and_then(|s| s.parse().ok());
                let ir = words.next().and_then(|s| s.parse().ok());
                let name: Vec<&str> = words.collect();
                (share.expect(l), ir.expect(l), name.join(" "))
            })
            .collect()
    };
    for (name, top) in [("inclusive", section("inclusive")), ("self", section("self"))] {
        assert_eq!(top.len(), 5, "{name}: {stdout}");
        for (share, ir, function) in &top {
            assert!(*ir <= total && *share <= 100.0 && !function.is_empty(), "{name}: {stdout}");
        }
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{name} is sorted: {stdout}");
    }
    // Inclusive, the first holds (nearly) the whole run; by self, none does.
    assert!(section("inclusive")[0].0 > 90.0, "{stdout}");
    assert!(section("self")[0].1 < total, "{stdout}");
}

/// The top-level modules of `src/` import each other without a cycle (the layering in `src/lib.rs`),
/// and the check says so when one appears: a two-module tree that imports both ways fails it.
#[test]
fn the_modules_of_src_import_each_other_without_a_cycle() {
    let shape = |src: &Path| {
        Command::new("python3")
            .arg(Path::new(ROOT).join("scripts/lib/module_shape.py"))
            .arg("--check")
            .arg(src)
            .output()
            .expect("python3 runs scripts/lib/module_shape.py")
    };
    let out = shape(&Path::new(ROOT).join("src"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("cycles: none"), "{text}{}", String::from_utf8_lossy(&out.stderr));

    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("lib.rs"), "pub mod high;\npub mod low;\n").unwrap();
    std::fs::write(tree.path().join("high.rs"), "use crate::low::Row;\npub struct Page;\n").unwrap();
    std::fs::write(tree.path().join("low.rs"), "pub struct Row(crate::high::Page);\n").unwrap();
    let out = shape(tree.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cycle 1: 2 modules, 2 edges"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("import cycle"));
}
