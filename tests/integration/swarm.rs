//! Stacks on the real Docker Engine that `scripts/test` ensures (a single-node
//! swarm). The `docker` CLI appears only as an outside witness. Every test
//! uses names of its own and removes what it made.

use std::path::Path;
use std::process::Command;

use crate::support::{Run, TestDb};

/// A unique suffix for names on the shared engine.
fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run the docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    docker(args).lines().map(str::to_string).filter(|l| !l.trim().is_empty()).collect()
}

/// A region of its own, its config file, and cleanup of anything the test left.
struct Fixture {
    db: TestDb,
    code: String,
    stack: String,
    label: String,
    images: Vec<String>,
}

impl Fixture {
    /// `extra` is YAML appended under `regions.<code>.stack`.
    fn new(extra: &str) -> Fixture {
        let id = unique();
        let code = format!("t{id}");
        let stack = format!("geoctl-e2e-{id}");
        let label = format!("geoctl-e2e-{id}");
        let db = TestDb::migrated();
        let config = format!(
            "regions:\n  {code}:\n    redis_url: redis://:first-redis-secret@127.0.0.1:6379/0\n    redis_password: first-password-secret\n    stack:\n      name: {stack}\n      placement_label: {label}\n      replicas: 2\n      cpus_reservation: \"0.01\"\n      memory_reservation: 8M\n{extra}"
        );
        std::fs::write(db.dir().join("geoctl.yaml"), config).unwrap();
        db.geoctl(&["region", "add", &code, "--name", "E2E test region"]).success();
        Fixture { db, code, stack, label, images: Vec::new() }
    }

    fn geoctl(&self, args: &[&str]) -> Run {
        self.db.geoctl(args)
    }

    fn geoctl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.db.geoctl_with(args, env)
    }

    fn node_id(&self) -> String {
        let nodes = self.geoctl(&["node", "ls", "-o", "json"]).success().json();
        nodes[0]["id"].as_str().unwrap().to_string()
    }

    /// Builds the agent image under a tag of this test's.
    fn build_image(&mut self, tag: &str, label: &str) -> String {
        self.geoctl(&["image", "build", "--tag", tag, "--label", &format!("e2e={label}")]).success();
        self.images.push(tag.to_string());
        docker(&["image", "inspect", "--format", "{{.Id}}", tag]).trim().to_string()
    }

    /// Objects of this stack still on the engine, by kind.
    fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.stack.namespace={}", self.stack);
        let mut out = Vec::new();
        for (kind, args) in [
            ("service", vec!["service", "ls", "-q", "--filter", &filter]),
            ("network", vec!["network", "ls", "-q", "--filter", &filter]),
            ("secret", vec!["secret", "ls", "-q", "--filter", &filter]),
            ("container", vec!["ps", "-aq", "--filter", &filter]),
        ] {
            out.extend(docker_lines(&args).into_iter().map(|id| format!("{kind} {id}")));
        }
        out
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.geoctl(&["stack", "rm", "--region", &self.code, "--volumes", "--yes"]);
        let node = self.geoctl(&["node", "ls", "-o", "json"]);
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&node.stdout)
            .ok()
            .and_then(|v| v[0]["id"].as_str().map(String::from))
        {
            let _ = self.geoctl(&["node", "label", &id, "--region", &self.code, "--label", &self.label, "--remove"]);
        }
        for image in &self.images {
            let _ = Command::new("docker").args(["image", "rm", "-f", image]).output();
        }
    }
}

/// The built-in template, with a command that runs without the agent's
/// database and Redis: pings loopback from inside the task (which also proves
/// the ping_group_range sysctl lets a non-root process send ICMP).
fn test_templates(dir: &Path) -> String {
    let builtin = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/stack.yml.tera")).unwrap();
    let command_line = builtin.lines().find(|l| l.trim_start().starts_with("command:")).unwrap();
    let health_line = builtin.lines().find(|l| l.contains("\"agent\", \"health\"")).unwrap();
    let text = builtin
        .replace(
            command_line,
            "    command: [\"geoctl\", \"probe\", \"--type\", \"ping\", \"127.0.0.1\", \"--count\", \"100\", \"--timeout\", \"2m\"]",
        )
        .replace(health_line, "      test: [\"CMD\", \"geoctl\", \"--version\"]")
        .replace("start_period: 20s", "start_period: 1s")
        // The ping does not trap SIGTERM as PID 1; do not wait the agent's 30 s drain for it.
        .replace("stop_grace_period: 30s", "stop_grace_period: 1s")
        .replace("interval: 15s", "interval: 1s");
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("stack.yml.tera"), text).unwrap();
    templates.display().to_string()
}

#[test]
fn render_passes_docker_stack_config_and_holds_no_secret() {
    let f = Fixture::new("");
    let file = f.db.dir().join("stack.yml");
    let run = f.geoctl_with(
        &["stack", "render", "--region", &f.code, "--file", file.to_str().unwrap()],
        &[("DATABASE_URL", &format!("{}?password=db-secret-value", f.db.url))],
    );
    let run = run.success();
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in ["first-redis-secret", "first-password-secret", "db-secret-value"] {
        assert!(!text.contains(secret), "rendered file holds a secret:\n{text}");
        assert!(!run.stderr.contains(secret));
    }
    for needle in
        ["encrypted", "attachable: true", "spread: node.id", "cap_drop: [ALL]", "read_only: true", "max-size: 10m"]
    {
        assert!(text.contains(needle), "rendered file lacks `{needle}`:\n{text}");
    }
    assert!(text.contains(&format!("node.labels.{} == {}", f.label, f.code)));
    // The real CLI accepts it as it is.
    let config = docker(&["stack", "config", "-c", file.to_str().unwrap()]);
    assert!(config.contains("geoctl"), "{config}");
}

#[test]
fn bad_input_is_refused_before_any_change() {
    let f = Fixture::new("      image: geoctl-e2e-missing:none\n");
    // A template error names the file and the line.
    let bad = f.db.dir().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("stack.yml.tera"), "version: \"3.8\"\nservices:\n  {% if %}\n").unwrap();
    f.geoctl(&["stack", "render", "--region", &f.code, "--templates", bad.to_str().unwrap()])
        .usage_error(&["stack.yml.tera", "3:"]);
    // A secret with no source.
    let code2 = format!("t{}", unique());
    f.geoctl(&["region", "add", &code2, "--name", "No Redis"]).success();
    f.geoctl(&["stack", "render", "--region", &code2]).usage_error(&["REDIS_URL_", "no source"]);
    // An engine that does not answer is named.
    let run = f.geoctl_with(&["swarm", "status"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("unix:///nonexistent/docker.sock"), "{}", run.stderr);
    // An unknown node.
    f.geoctl(&["node", "label", "no-such-node", "--region", &f.code]).usage_error(&["unknown node `no-such-node`"]);
    // A missing image.
    f.geoctl(&["stack", "deploy", "--region", &f.code]).usage_error(&["geoctl-e2e-missing:none", "geoctl image build"]);
    assert_eq!(f.leftovers(), Vec::<String>::new());
    // A constraint no node satisfies (the node is not labelled).
    let templates = test_templates(&f.db.dir());
    let g = Fixture::new("");
    let mut g = g;
    let tag = format!("geoctl-e2e:{}", unique());
    g.build_image(&tag, "a");
    let config = std::fs::read_to_string(g.db.dir().join("geoctl.yaml")).unwrap() + &format!("      image: {tag}\n");
    std::fs::write(g.db.dir().join("geoctl.yaml"), config).unwrap();
    g.geoctl(&["stack", "deploy", "--region", &g.code, "--templates", &templates])
        .usage_error(&["can run on no node", &g.label]);
    assert_eq!(g.leftovers(), Vec::<String>::new());
}

#[test]
fn deploy_redeploy_rotate_upgrade_remove() {
    let mut f = Fixture::new("");
    let templates = test_templates(&f.db.dir());
    let tag = format!("geoctl-e2e:{}", unique());
    let first_id = f.build_image(&tag, "first");
    let config = std::fs::read_to_string(f.db.dir().join("geoctl.yaml")).unwrap() + &format!("      image: {tag}\n");
    std::fs::write(f.db.dir().join("geoctl.yaml"), config).unwrap();
    let node = f.node_id();
    f.geoctl(&["node", "label", &node, "--region", &f.code, "--label", &f.label]).success();
    let again = f.geoctl(&["node", "label", &node, "--region", &f.code, "--label", &f.label]).success();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);

    // Fresh deploy, converged.
    let run = f.geoctl(&["stack", "deploy", "--region", &f.code, "--templates", &templates, "-o", "json"]).success();
    let report = run.json();
    assert_eq!(report["services"][0]["action"], "create", "{report}");
    assert!(report["converged_seconds"].as_f64().is_some());
    let agent = format!("{}_agent", f.stack);
    let witness = docker(&["stack", "services", &f.stack, "--format", "{{.Name}} {{.Replicas}}"]);
    assert!(witness.contains(&format!("{agent} 2/2")), "docker stack services:\n{witness}");
    let image = docker(&["service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", &agent]);
    assert_eq!(image.trim(), first_id, "deployed by image id, so no task start asks a registry");

    // Unchanged redeploy: no service update, same version.
    let version = |f: &Fixture| -> u64 {
        let services = f.geoctl(&["stack", "services", "--region", &f.code, "-o", "json"]).success().json();
        services[0]["version"].as_u64().unwrap()
    };
    let before = version(&f);
    let run = f.geoctl(&["stack", "deploy", "--region", &f.code, "--templates", &templates, "-o", "json"]).success();
    assert_eq!(run.json()["services"][0]["action"], "unchanged");
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    assert_eq!(version(&f), before, "an unchanged redeploy must not bump the service version");

    // Rotate a secret: a new version, the service moved, the old one gone.
    let base = format!("{}_redis_password_{}", f.stack, f.code.to_uppercase().to_lowercase());
    let run = f
        .geoctl_with(
            &["secret", "rotate", &base, "--from-env", "NEW_VALUE"],
            &[("NEW_VALUE", "second-password-secret")],
        )
        .success();
    assert!(!run.stderr.contains("second-password-secret") && !run.stdout.contains("second-password-secret"));
    let secrets: Vec<String> = docker_lines(&["secret", "ls", "--format", "{{.Name}}"]);
    let versions: Vec<&String> = secrets.iter().filter(|s| s.starts_with(&base)).collect();
    assert_eq!(versions.len(), 1, "old version not removed: {versions:?}");
    assert!(version(&f) > before);

    // Upgrade to another image: a rolling update to it.
    let tag2 = format!("{tag}-2");
    let second_id = f.build_image(&tag2, "second");
    assert_ne!(first_id, second_id);
    let run =
        f.geoctl(&["stack", "upgrade", "--region", &f.code, "--image", &tag2, "--templates", &templates]).success();
    assert!(run.stderr.contains("converged"), "{}", run.stderr);
    let image = docker(&["service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", &agent]);
    assert_eq!(image.trim(), second_id);

    // Remove: nothing left behind.
    f.geoctl(&["stack", "rm", "--region", &f.code, "--volumes", "--yes"]).success();
    assert_eq!(f.leftovers(), Vec::<String>::new());
    let volumes = docker_lines(&["volume", "ls", "-q", "--filter", &format!("name={}", f.stack)]);
    assert_eq!(volumes, Vec::<String>::new());
}

#[test]
fn region_init_is_idempotent_and_destroy_leaves_nothing() {
    let mut f = Fixture::new("");
    let templates = test_templates(&f.db.dir());
    let tag = format!("geoctl-e2e:{}", unique());
    f.build_image(&tag, "init");
    let config = std::fs::read_to_string(f.db.dir().join("geoctl.yaml")).unwrap() + &format!("      image: {tag}\n");
    std::fs::write(f.db.dir().join("geoctl.yaml"), config).unwrap();

    let plan = f.geoctl(&["region", "init", &f.code, "--templates", &templates, "--dry-run"]).success();
    assert!(plan.stderr.contains("would"), "{}", plan.stderr);
    assert_eq!(f.leftovers(), Vec::<String>::new(), "a dry run changed something");

    let first = f.geoctl(&["region", "init", &f.code, "--templates", &templates]).success();
    assert!(first.stderr.contains("label node") && first.stderr.contains("ready"), "{}", first.stderr);
    let witness = docker(&["stack", "services", &f.stack, "--format", "{{.Name}} {{.Replicas}}"]);
    assert!(witness.contains("_agent 2/2"), "{witness}");

    let second = f.geoctl(&["region", "init", &f.code, "--templates", &templates]).success();
    assert!(second.stderr.contains("unchanged"), "{}", second.stderr);

    f.geoctl(&["region", "destroy", &f.code, "--volumes", "--yes"]).success();
    assert_eq!(f.leftovers(), Vec::<String>::new());
}
