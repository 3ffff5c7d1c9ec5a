//! Three regions as three Swarms, each on a Docker Engine of its own served
//! over TLS, on the test bed `scripts/test` starts as root
//! (`scripts/lib/testbed.sh`: dockerd instances in network namespaces on
//! 10.231.K.0/24 for a free bed index K, a test CA, a fourth engine to join as a worker). The docker
//! CLI, pointed at an engine with the bed's client certificate, is the
//! outside witness.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Run, TestDb};

/// The bed: its directory, its engines' addresses, and where its tasks reach
/// PostgreSQL and Redis on the host.
struct Bed {
    dir: PathBuf,
    hosts: Vec<String>,
    /// The host's address on the bed's bridge (10.231.K.1), where the engines' tasks reach it.
    host_addr: String,
    database_url: String,
    redis_url: String,
    redis_password_file: String,
}

impl Bed {
    fn get() -> Bed {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run `scripts/test` as root, which starts the test bed of Docker Engines")
            })
        };
        let dir = PathBuf::from(var("GEOCTL_TEST_BED"));
        let hosts: Vec<String> = std::fs::read_to_string(dir.join("hosts"))
            .expect("the bed's hosts file")
            .lines()
            .map(str::to_string)
            .collect();
        assert!(hosts.len() >= 4, "the bed has {} engines, not 4", hosts.len());
        let host_addr = std::fs::read_to_string(dir.join("host_addr")).expect("the bed's host_addr file");
        Bed {
            dir,
            hosts,
            host_addr: host_addr.trim().to_string(),
            database_url: var("GEOCTL_TEST_BED_DATABASE_URL"),
            redis_url: var("GEOCTL_TEST_BED_REDIS_URL"),
            redis_password_file: var("GEOCTL_TEST_BED_REDIS_PASSWORD_FILE"),
        }
    }

    fn certs(&self) -> String {
        self.dir.join("client").display().to_string()
    }

    /// The docker CLI against engine `i` (0-based), with the bed's client certificate.
    fn docker(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.hosts[i])
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", self.certs())
            .output()
            .expect("run the docker CLI")
    }

    fn docker_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.docker(i, args);
        assert!(out.status.success(), "docker {args:?} on {}: {}", self.hosts[i], String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pid_of_engine(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("engine{}/dockerd.pid", i + 1))).unwrap().trim().to_string()
    }
}

/// A plain HTTP target on the bed's host address, answering 200 until dropped.
fn serve_target(addr: &str) -> u16 {
    let listener = TcpListener::bind((addr, 0)).expect("bind the target on the bed's host address");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not after {} s", limit.as_secs());
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Regions {
    db: TestDb,
    codes: Vec<String>,
    env: Vec<(String, String)>,
}

impl Regions {
    fn geoctl(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.db.geoctl_with(args, &env)
    }

    fn results_from(&self, code: &str) -> i64 {
        self.db
            .scalar(&format!("SELECT count(*) FROM monitor_results WHERE execution_region = '{code}'"))
            .parse()
            .unwrap()
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        // Engine 3 may be stopped by now; its region goes with the bed.
        for code in &self.codes[..2] {
            let _ = self.geoctl(&["region", "destroy", code, "--yes"]);
        }
    }
}

/// Three regions initialised on three TLS engines report results from each;
/// a wrong client certificate is refused naming the engine; a worker joined
/// with `swarm join` runs its region's agent (placed there by the region's
/// label) and `swarm leave` drains it first; with one engine stopped, the two
/// others keep deploying, reporting and recording, and `health` names the
/// dead one.
#[test]
fn three_regions_on_three_tls_engines() {
    let bed = Bed::get();
    let id = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let codes: Vec<String> = ["a", "b", "c"].iter().map(|r| format!("bed{r}{id}")).collect();
    let tag = format!("geoctl-bed:{id}");
    let db = TestDb::migrated();
    let mut db_url = url::Url::parse(&bed.database_url).unwrap();
    db_url.set_path(url::Url::parse(&db.url).unwrap().path());
    let mut config = String::from("stack:\n  replicas: 1\n  cpus_reservation: \"0.01\"\n  memory_reservation: 8M\n");
    config.push_str(&format!("  image: {tag}\nregions:\n"));
    for (i, code) in codes.iter().enumerate() {
        let redis_db = 10 + i;
        config.push_str(&format!(
            "  {code}:\n    redis_url: {}/{redis_db}\n    redis_password_file: {}\n    docker_host: {}\n    docker_cert_path: {}\n    stack:\n      name: geoctl-{code}\n",
            bed.redis_url.trim_end_matches("/0"),
            bed.redis_password_file,
            bed.hosts[i],
            bed.certs(),
        ));
    }
    std::fs::write(db.dir().join("geoctl.yaml"), config).unwrap();
    let regions = Regions { db, codes: codes.clone(), env: vec![("DATABASE_URL".into(), db_url.to_string())] };

    // A client certificate from another CA: refused, and the error names the engine.
    let suffix = codes[0].to_uppercase().replace('-', "_");
    let stranger = bed.dir.join("stranger").display().to_string();
    let env: Vec<(&str, &str)> = vec![("DATABASE_URL", regions.env[0].1.as_str())];
    let mut with_stranger = env.clone();
    let key = format!("DOCKER_CERT_PATH_{suffix}");
    with_stranger.push((key.as_str(), stranger.as_str()));
    let refused = regions.db.geoctl_with(&["swarm", "status", "--region", &codes[0]], &with_stranger);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(&bed.hosts[0]) && refused.stderr.contains("do not accept each other's certificates"),
        "the error must name the engine and say TLS refused the certificate:\n{}",
        refused.stderr
    );

    // Each region's image on its own engine, and each region initialised there.
    for (i, code) in codes.iter().enumerate() {
        regions.geoctl(&["region", "add", code, "--name", &format!("Bed region {i}")]).success();
        regions.geoctl(&["image", "build", "--tag", &tag, "--region", code]).success();
        let init = regions.geoctl(&["region", "init", code, "--timeout", "3m"]).success();
        assert!(init.stderr.contains(&bed.hosts[i]), "init names its engine:\n{}", init.stderr);
        assert!(init.stderr.contains("ready"), "{}", init.stderr);
        let services = bed.docker_ok(i, &["service", "ls", "--format", "{{.Name}}"]);
        assert!(services.contains(&format!("geoctl-{code}_agent")), "engine {i}: {services}");
    }

    // A monitor in every region, measured from each engine's agents.
    let target_port = serve_target(&bed.host_addr);
    let target = format!("http://{}:{target_port}/", bed.host_addr);
    regions
        .geoctl(&["monitor", "create", "--name", "bed-web", "--type", "http", "--target", &target, "--every", "10s"])
        .success();
    wait_until("results from each of the three regions", Duration::from_secs(90), || {
        codes.iter().all(|c| regions.results_from(c) > 0)
    });

    // A fourth engine joins region a as a worker, through its API; its agent moves there on drain.
    let dry =
        regions.geoctl(&["swarm", "join", "--region", &codes[0], "--engine", &bed.hosts[3], "--dry-run"]).success();
    assert!(dry.stderr.contains("would join"), "{}", dry.stderr);
    assert!(bed.docker_ok(3, &["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim() == "inactive");
    let joined = regions
        .geoctl(&["swarm", "join", "--region", &codes[0], "--engine", &bed.hosts[3], "-o", "json"])
        .success()
        .json();
    let worker = joined["node_id"].as_str().unwrap().to_string();
    let again = regions.geoctl(&["swarm", "join", "--region", &codes[0], "--engine", &bed.hosts[3]]).success();
    assert!(again.stderr.contains("unchanged"), "a second join changes nothing:\n{}", again.stderr);
    let labels = bed.docker_ok(0, &["node", "inspect", &worker, "--format", "{{json .Spec.Labels}}"]);
    assert!(labels.contains(&format!("\"region\":\"{}\"", codes[0])), "{labels}");
    let manager = bed.docker_ok(0, &["info", "--format", "{{.Swarm.NodeID}}"]).trim().to_string();
    regions.geoctl(&["node", "drain", &manager, "--region", &codes[0]]).success();
    let service = format!("geoctl-{}_agent", codes[0]);
    let on_worker = || {
        let out = bed.docker(
            0,
            &[
                "service",
                "ps",
                &service,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.CurrentState}}",
            ],
        );
        let ids = bed.docker(0, &["service", "ps", &service, "--filter", "desired-state=running", "-q"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        ids.lines().next().is_some_and(|task| {
            let node = bed.docker(0, &["inspect", task, "--format", "{{.NodeID}} {{.Status.State}}"]);
            String::from_utf8_lossy(&node.stdout).trim() == format!("{worker} running")
        }) && out.status.success()
    };
    wait_until("region a's agent running on the joined worker", Duration::from_secs(90), on_worker);
    let before = regions.results_from(&codes[0]);
    wait_until("results from region a's agent on the worker", Duration::from_secs(60), || {
        regions.results_from(&codes[0]) > before + 1
    });

    // Leave: the worker is drained first (its agent goes back to the manager), then leaves.
    regions.geoctl(&["node", "activate", &manager, "--region", &codes[0]]).success();
    let left = regions.geoctl(&["swarm", "leave", "--region", &codes[0], "--engine", &bed.hosts[3]]).success();
    assert!(left.stderr.contains("drain node"), "{}", left.stderr);
    assert_eq!(bed.docker_ok(3, &["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim(), "inactive");
    let nodes = bed.docker_ok(0, &["node", "ls", "-q"]);
    assert!(!nodes.contains(&worker[..12]), "the worker is still listed: {nodes}");

    // Engine c stops: a and b carry on; health names the dead engine and fails.
    let killed = Command::new("kill").arg(bed.pid_of_engine(2)).status().unwrap();
    assert!(killed.success());
    wait_until("engine c down", Duration::from_secs(60), || !bed.docker(2, &["version"]).status.success());
    let health = regions.geoctl(&["health", "-o", "json"]);
    assert_eq!(health.code, 1, "{health:?}");
    assert!(
        health.stdout.contains(&format!("engine unreachable: cannot reach the Docker Engine at {}", bed.hosts[2])),
        "health must name the dead engine:\n{}",
        health.stdout
    );
    for (i, code) in codes[..2].iter().enumerate() {
        let init = regions.geoctl(&["region", "init", code, "--timeout", "2m"]).success();
        assert!(init.stderr.contains(&bed.hosts[i]), "{}", init.stderr);
        let before = regions.results_from(code);
        wait_until("results keep arriving from the live regions", Duration::from_secs(60), || {
            regions.results_from(code) > before
        });
    }
}
