//! `geoctl channel …` on the command line: bad input writes nothing, secrets never show.

use super::{runtime, Receiver};
use crate::support::{ClosedPort, TestDb};

#[test]
fn bad_channels_are_refused_and_nothing_is_written() {
    let db = TestDb::migrated();
    let add = |args: &[&str]| db.geoctl(&[&["channel", "add"][..], args].concat());
    let url = "http://127.0.0.1:9/in";
    add(&["ops", "--type", "sms", "--url", url]).usage_error(&["unknown channel type `sms`", "webhook, slack"]);
    add(&["ops", "--type", "webhook", "--url", url]).usage_error(&["needs its secret", "--secret-env"]);
    add(&["ops", "--type", "webhook", "--url", url, "--secret-env", "OPS_KEY"]).usage_error(&[
        "OPS_KEY",
        "not set",
        "--no-secret-check",
    ]);
    add(&["ops", "--type", "webhook", "--secret-file", "/nonexistent/key", "--url", "http://127.0.0.1:9/"])
        .usage_error(&["/nonexistent/key"]);
    add(&["Ops!", "--type", "slack", "--secret-env", "X"]).usage_error(&["invalid channel name `Ops!`"]);
    add(&["mail", "--type", "email", "--smtp-host", "127.0.0.1", "--from", "geoctl@example.com"])
        .usage_error(&["--to"]);
    add(&["chat", "--type", "slack", "--url", "https://hooks.slack.com/services/T/B/X"]).usage_error(&["secret"]);
    // There is no flag that takes a secret's value.
    let run = add(&["chat", "--type", "slack", "--secret", "https://hooks.slack.com/services/T/B/X"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let dry = add(&["ops", "--type", "webhook", "--url", url, "--secret-env", "PATH", "--dry-run"]).success();
    assert!(dry.stderr.contains("would be created"), "{}", dry.stderr);
    db.geoctl(&["channel", "test", "nope"]).usage_error(&["unknown channel `nope`", "there are none yet"]);
    assert_eq!(db.count("alert_channels"), 0);
}

#[test]
fn channels_are_listed_masked_and_removed_only_when_no_monitor_names_them() {
    let db = TestDb::migrated();
    let env = [("OPS_KEY", "whsec_do_not_print")];
    let args = [
        "channel",
        "add",
        "ops",
        "--type",
        "webhook",
        "--url",
        "https://hooks.example.com/in?token=t0ken",
        "--secret-env",
        "OPS_KEY",
    ];
    let run = db.geoctl_with(&args, &env).success();
    assert!(run.stderr.contains("channel ops created"), "{}", run.stderr);
    let run = db.geoctl_with(&args, &env).success();
    assert!(run.stderr.contains("unchanged"), "{}", run.stderr);
    let mut other = args.to_vec();
    other[6] = "https://elsewhere.example.com/in";
    db.geoctl_with(&other, &env).usage_error(&["channel `ops` exists"]);

    let list = db.geoctl(&["channel", "list", "-o", "json"]).success();
    assert!(!list.stdout.contains("whsec") && !list.stdout.contains("t0ken"), "{}", list.stdout);
    let json = list.json();
    assert_eq!(json[0]["secret_from"], "env OPS_KEY");
    assert_eq!(json[0]["type"], "webhook");
    let stored = db.scalar("SELECT secret_ref FROM alert_channels");
    assert_eq!(stored, r#"{"env": "OPS_KEY"}"#);

    db.exec(
        "INSERT INTO monitors (name) VALUES ('api');
         INSERT INTO monitor_channels SELECT m.id, c.id FROM monitors m, alert_channels c",
    );
    db.geoctl(&["channel", "remove", "ops", "--yes"]).usage_error(&["monitor(s) api", "--force"]);
    assert_eq!(db.count("alert_channels"), 1);
    let run = db.geoctl(&["channel", "remove", "ops", "--yes", "--force"]).success();
    assert!(run.stderr.contains("removed from monitor(s) api"), "{}", run.stderr);
    assert_eq!((db.count("alert_channels"), db.count("monitor_channels")), (0, 0));
    db.geoctl(&["channel", "remove", "ops", "--yes"]).usage_error(&["unknown channel `ops`"]);
}

#[test]
fn an_unreachable_smtp_server_is_stored_with_a_warning_and_its_test_fails() {
    let db = TestDb::migrated();
    let closed = ClosedPort::new();
    let port = closed.port.to_string();
    let mail =
        ["--smtp-host", "127.0.0.1", "--smtp-port", &port, "--from", "geoctl@example.com", "--to", "ops@example.com"];
    let run = db.geoctl(&[&["channel", "add", "mail", "--type", "email"][..], &mail[..]].concat()).success();
    assert!(
        run.stderr.contains("warning: channel `mail` is stored") && run.stderr.contains("did not answer"),
        "{}",
        run.stderr
    );
    assert_eq!(db.count("alert_channels"), 1);
    let test = db.geoctl(&["channel", "test", "mail"]);
    assert_eq!(test.code, 1, "{}", test.stderr);
    assert!(test.stderr.contains("was not delivered") && test.stderr.contains("no answer"), "{}", test.stderr);
}

#[test]
fn channel_test_says_what_the_receiver_answered() {
    let rt = runtime();
    let hook = rt.block_on(Receiver::start());
    let db = TestDb::migrated();
    let key = db.dir().join("hook.key");
    std::fs::write(&key, "whsec_test_key\n").unwrap();
    let key = key.display().to_string();
    let url = hook.url("/geoctl");
    db.geoctl(&["channel", "add", "ops", "--type", "webhook", "--url", &url, "--secret-file", &key]).success();

    hook.answer(401, "signature rejected: whsec_test_key is not ours");
    let run = db.geoctl(&["channel", "test", "ops"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("401: signature rejected"), "{}", run.stderr);
    assert!(!run.stderr.contains("whsec_test_key"), "the secret was echoed: {}", run.stderr);

    hook.answer(200, "thanks");
    let run = db.geoctl(&["channel", "test", "ops", "-o", "json"]).success();
    assert_eq!(run.json()["status"], 200);
    assert!(run.stderr.contains("delivered; the receiver answered 200: thanks"), "{}", run.stderr);
    let got = hook.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["event"]["kind"], "test");

    // An operator's template and dashboard link, from the configuration.
    let templates = db.dir().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("title.txt"), "ACME {{ incident.summary }}").unwrap();
    let env = [("NOTIFY_TEMPLATES", "templates"), ("DASHBOARD_URL", "https://status.example.com")];
    db.geoctl_with(&["channel", "test", "ops"], &env).success();
    let body = hook.requests()[2].json();
    assert!(body["title"].as_str().unwrap().starts_with("ACME geoctl test notification"), "{body}");
    assert_eq!(body["dashboard_url"], "https://status.example.com");
    std::fs::write(templates.join("text.txt"), "{% if %}").unwrap();
    db.geoctl_with(&["channel", "test", "ops"], &env).usage_error(&["text.txt"]);
    assert_eq!(hook.requests().len(), 3, "a broken template stops before sending");
    assert_eq!(db.count("notifications"), 0, "a test is not an outbox row");
}
