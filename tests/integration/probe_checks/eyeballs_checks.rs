//! Happy Eyeballs in a network namespace made for the test: the name has an
//! IPv6 address whose packets vanish (a veth pair with no one behind it) and a working IPv4 one. Also: `-4` with an IPv6 literal is bad input.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::geoctl_in;

/// The namespace, its hosts file and the server in it; removed on drop.
struct Namespace {
    name: String,
    server: Option<Child>,
}

impl Namespace {
    fn ip(&self, args: &[&str]) -> bool {
        Command::new("ip").args(["-n", &self.name]).args(args).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn blackholed_ipv6_falls_back_to_ipv4_and_says_so() {
    if !is_root() || Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs root and iproute2 for a network namespace");
        return;
    }
    let name = format!("geoctl-he-{}", std::process::id());
    let created = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
    assert!(created, "ip netns add {name} failed");
    let mut ns = Namespace { name: name.clone(), server: None };
    assert!(ns.ip(&["link", "set", "lo", "up"]));
    // 2001:db8:dead::/64 (documentation range) is on a veth pair inside the
    // namespace where nobody answers for ::1: its packets vanish without a word.
    assert!(ns.ip(&["link", "add", "bh0", "type", "veth", "peer", "name", "bh1"]));
    assert!(ns.ip(&["link", "set", "bh0", "up"]) && ns.ip(&["link", "set", "bh1", "up"]));
    assert!(ns.ip(&["-6", "addr", "add", "2001:db8:dead::2/64", "dev", "bh0", "nodad"]));
    std::fs::create_dir_all(format!("/etc/netns/{name}")).unwrap();
    std::fs::write(format!("/etc/netns/{name}/hosts"), "2001:db8:dead::1 dual.test\n127.0.0.1 dual.test\n").unwrap();

    let port = "8098";
    let server = Command::new("ip")
        .args(["netns", "exec", &name, "python3", "-m", "http.server", port, "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("start python3 -m http.server in the namespace");
    ns.server = Some(server);
    let dir = tempfile::tempdir().unwrap();
    let geoctl = env!("CARGO_BIN_EXE_geoctl");
    let probe = |extra: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &name, geoctl, "probe", &format!("http://dual.test:{port}/"), "-o", "json"]);
        cmd.args(extra).env("HOME", dir.path()).stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Wait (bounded) for the server.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, _) = probe(&["-4", "--timeout", "2s"]);
        if code == Some(0) || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let (code, r, stderr) = probe(&["--timeout", "5s"]);
    assert_eq!(code, Some(0), "{r}\n{stderr}");
    assert_eq!(r["up"], true);
    assert_eq!(r["resolved_address"], "127.0.0.1");
    assert_eq!(r["ip_family"], "IPv4");
    // IPv6 went first and got no answer; IPv4 started after the attempt delay.
    let connect = r["phases"]["connect_ms"].as_f64().unwrap();
    assert!((240.0..2000.0).contains(&connect), "connect {connect}");

    // --all-addresses still checks each one: the silent IPv6 address is down.
    let (code, r, _) = probe(&["--timeout", "2s", "--all-addresses"]);
    assert_eq!(code, Some(1), "{r}");
    let per = r["per_address"].as_array().unwrap();
    assert_eq!(per.len(), 2, "{r}");
    assert!(per.iter().any(|a| a["address"] == "127.0.0.1" && a["up"] == true), "{r}");
    assert!(per.iter().any(|a| a["address"] == "2001:db8:dead::1" && a["up"] == false), "{r}");
}

#[test]
fn address_family_flag_against_a_literal_of_the_other_family_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    geoctl_in(dir.path(), &["probe", "http://[::1]:9/", "-4"], &[]).usage_error(&["-4/--ipv4", "IPv6"]);
    geoctl_in(dir.path(), &["probe", "127.0.0.1:9", "-6"], &[]).usage_error(&["-6/--ipv6"]);
    geoctl_in(dir.path(), &["probe", "https://127.0.0.1:9/", "--http1.1", "--http2"], &[]).usage_error(&["--http2"]);
}
