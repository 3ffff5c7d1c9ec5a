//! Target facts: GeoIP databases built here map loopback addresses to known
//! places and networks; `probe` shows them, `monitor check` records them with
//! the nearest region, summaries count them, and no database leaves them NULL.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use crate::mmdb;
use crate::support::{geoctl_in, TestDb};

/// A listener on `ip`, accepting in the background so TCP checks find it up.
fn listen(ip: [u8; 4]) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::from(ip), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _stream in listener.incoming() {});
    port
}

/// 127.0.0.2 is in Singapore on AS64500, 127.0.0.3 in London on AS64501;
/// 127.0.0.4 is in neither database.
pub fn write_databases(dir: &Path) -> (PathBuf, PathBuf) {
    let city = mmdb::build(
        "GeoLite2-City",
        &[
            (Ipv4Addr::new(127, 0, 0, 2), 32, mmdb::city("SG", "Singapore", 1.2897, 103.8501)),
            (Ipv4Addr::new(127, 0, 0, 3), 32, mmdb::city("GB", "London", 51.5085, -0.1257)),
        ],
    );
    let asn = mmdb::build(
        "GeoLite2-ASN",
        &[
            (Ipv4Addr::new(127, 0, 0, 2), 32, mmdb::asn(64500, "Edge Net SG")),
            (Ipv4Addr::new(127, 0, 0, 3), 32, mmdb::asn(64501, "Transit UK")),
        ],
    );
    let (city_path, asn_path) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&city_path, city).unwrap();
    std::fs::write(&asn_path, asn).unwrap();
    (city_path, asn_path)
}

#[test]
fn probe_shows_where_the_target_is() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = write_databases(dir.path());
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let env = [("GEOIP_CITY_DB", city), ("GEOIP_ASN_DB", asn)];
    let port = listen([127, 0, 0, 2]);
    let target = format!("127.0.0.2:{port}");

    let json = geoctl_in(dir.path(), &["probe", &target, "-o", "json"], &env).success().json();
    let facts = &json["target_facts"];
    assert_eq!(facts["country"], "SG", "{json}");
    assert_eq!(facts["city"], "Singapore");
    assert_eq!(facts["asn"], 64500);
    assert_eq!(facts["org"], "Edge Net SG");
    assert!((facts["latitude"].as_f64().unwrap() - 1.2897).abs() < 1e-9);
    let table = geoctl_in(dir.path(), &["probe", &target], &env).success().stdout;
    for needle in ["Singapore", "SG", "AS64500", "Edge Net SG", "1.2897, 103.8501"] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }

    // An address no database holds: configured, but nothing to say.
    let port = listen([127, 0, 0, 4]);
    let json = geoctl_in(dir.path(), &["probe", &format!("127.0.0.4:{port}"), "-o", "json"], &env).success().json();
    assert!(json["target_facts"].is_null() && json.get("target_facts").is_some(), "{json}");
    // No database: no facts at all.
    let json = geoctl_in(dir.path(), &["probe", &target, "-o", "json"], &[]).success().json();
    assert!(json.get("target_facts").is_none(), "{json}");
    // Settings come from the config file too, and `config show` says so.
    std::fs::write(dir.path().join("geoctl.yaml"), format!("geoip_city_db: {city}\ngeoip_asn_db: {asn}\n")).unwrap();
    let json = geoctl_in(dir.path(), &["probe", &target, "-o", "json"], &[]).success().json();
    assert_eq!(json["target_facts"]["city"], "Singapore");
    let shown = geoctl_in(dir.path(), &["config", "show"], &[]).success().stdout;
    assert!(shown.contains("geoip_city_db") && shown.contains(city), "{shown}");
}

#[test]
fn bad_databases_stop_before_anything_is_checked_or_written() {
    let db = TestDb::migrated();
    let port = listen([127, 0, 0, 2]);
    let target = format!("127.0.0.2:{port}");
    db.geoctl(&["monitor", "create", "--name", "edge", "--type", "tcp", "--target", &target]).success();
    let junk = db.dir().join("junk.mmdb");
    std::fs::write(&junk, b"this is not a MaxMind database").unwrap();
    let junk = junk.to_str().unwrap();
    let missing = db.dir().join("missing.mmdb");
    let missing = missing.to_str().unwrap();

    for (name, path) in [("GEOIP_CITY_DB", missing), ("GEOIP_ASN_DB", junk)] {
        db.geoctl_with(&["monitor", "check", "edge", "--region", "us-east"], &[(name, path)])
            .usage_error(&[name, path]);
        geoctl_in(&db.dir(), &["probe", &target], &[(name, path)]).usage_error(&[name, path]);
    }
    assert_eq!(db.count("monitor_results"), 0);
    assert_eq!(db.count("regional_performance_metrics"), 0);
    assert_eq!(db.count("regional_monitor_summaries"), 0);
}

#[test]
fn recorded_results_carry_facts_nearest_region_and_unique_counts() {
    let db = TestDb::migrated();
    let (city, asn) = write_databases(&db.dir());
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let env = [("GEOIP_CITY_DB", city), ("GEOIP_ASN_DB", asn)];
    let sg = format!("127.0.0.2:{}", listen([127, 0, 0, 2]));
    let uk = format!("127.0.0.3:{}", listen([127, 0, 0, 3]));
    let unknown = format!("127.0.0.4:{}", listen([127, 0, 0, 4]));
    for (name, target) in [("sg", &sg), ("uk", &uk), ("unknown", &unknown), ("plain", &sg)] {
        db.geoctl(&["monitor", "create", "--name", name, "--type", "tcp", "--target", target]).success();
    }
    // A region nearer to Singapore than Mumbai that is not active must not win.
    db.exec(
        "INSERT INTO regions (code, name, latitude, longitude, is_active) \
         VALUES ('ap-southeast', 'AP Southeast (Singapore)', 1.35, 103.82, false)",
    );

    let check = |monitor: &str, region: &str, env: &[(&str, &str)]| {
        db.geoctl_with(&["monitor", "check", monitor, "--region", region], env).success()
    };
    check("sg", "us-east", &env);
    check("sg", "us-east", &env);
    check("uk", "eu-west", &env);
    check("unknown", "us-east", &env);
    check("plain", "us-east", &[]);
    let json = db.geoctl_with(&["monitor", "check", "sg", "--region", "eu-west", "-o", "json"], &env).success().json();
    assert_eq!(json["target_facts"]["country"], "SG");

    let row = |monitor: &str| {
        db.scalar(&format!(
            "SELECT concat_ws('|', r.target_region, m.country_code, m.city, m.asn, m.isp, m.latitude, m.longitude) \
             FROM monitor_results r JOIN monitors n ON n.id = r.monitor_id \
             JOIN regional_performance_metrics m ON m.monitor_id = r.monitor_id AND m.checked_at = r.checked_at \
             WHERE n.name = '{monitor}' ORDER BY r.checked_at LIMIT 1"
        ))
    };
    // Singapore is nearest to Mumbai among the active regions; London to Dublin.
    assert_eq!(row("sg"), "ap-south|SG|Singapore|64500|Edge Net SG|1.2897|103.8501");
    assert_eq!(row("uk"), "eu-west|GB|London|64501|Transit UK|51.5085|-0.1257");
    // Nothing known, nothing recorded: NULLs, never guesses.
    assert_eq!(row("unknown"), "");
    assert_eq!(row("plain"), "");
    let nulls = "SELECT count(*) FROM regional_performance_metrics m JOIN monitors n ON n.id = m.monitor_id \
                 WHERE n.name IN ('unknown', 'plain') AND m.country_code IS NULL AND m.city IS NULL \
                 AND m.asn IS NULL AND m.isp IS NULL AND m.latitude IS NULL";
    assert_eq!(db.scalar(nulls), "2");

    let summaries = || {
        db.scalar(
            "SELECT string_agg(concat_ws(':', n.name, s.region_code, s.total_checks, \
                 coalesce(s.unique_countries::text, 'null'), coalesce(s.unique_isps::text, 'null'), \
                 array_to_string(s.countries, ','), array_to_string(s.isps, ',')), ' ' \
                 ORDER BY n.name, s.region_code) \
             FROM regional_monitor_summaries s JOIN monitors n ON n.id = s.monitor_id",
        )
    };
    let expected = "plain:us-east:1:null:null \
                    sg:eu-west:1:1:1:SG:Edge Net SG \
                    sg:us-east:2:1:1:SG:Edge Net SG \
                    uk:eu-west:1:1:1:GB:Transit UK \
                    unknown:us-east:1:null:null";
    assert_eq!(summaries(), expected);
    // A region that reached two places counts both.
    db.exec("UPDATE monitors SET target = (SELECT target FROM monitors WHERE name = 'uk') WHERE name = 'sg'");
    check("sg", "us-east", &env);
    let two = "SELECT concat_ws(':', unique_countries, unique_isps, array_to_string(countries, ',')) \
               FROM regional_monitor_summaries s JOIN monitors n ON n.id = s.monitor_id \
               WHERE n.name = 'sg' AND s.region_code = 'us-east'";
    assert_eq!(db.scalar(two), "2:2:GB,SG");
    // The running totals are what a rebuild from the results gives.
    let before = summaries();
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(summaries(), before);
}

/// Log lines of `run`, as a subscriber of the test's own formats them.
fn logged(run: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || Sink(sink.clone())).finish();
    tracing::subscriber::with_default(subscriber, run);
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    text
}

/// GeoLite2 stores ASNs as uint32; other writers use uint16, int32 or uint64. Any width that
/// fits is read; a record that does not decode is reported once per file, never passed over.
#[test]
fn asns_of_any_integer_width_and_undecodable_records_reported_once() {
    use mmdb::{asn_as, Value};
    let dir = tempfile::tempdir().unwrap();
    let ip = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let widths = mmdb::build(
        "GeoLite2-ASN",
        &[
            (ip(2), 32, asn_as(Value::U16(64500), "Edge Net SG")),
            (ip(3), 32, asn_as(Value::I32(64501), "Transit UK")),
            (ip(5), 32, asn_as(Value::U64(4_200_000_000), "Private Net")),
        ],
    );
    let widths_path = dir.path().join("widths.mmdb");
    std::fs::write(&widths_path, widths).unwrap();
    let geo = geoctl::geo::GeoDb::open(None, Some(&widths_path)).unwrap();
    let lookups = logged(|| {
        assert_eq!(geo.asn(ip(2).into()), Some(64500));
        assert_eq!(geo.asn(ip(3).into()), Some(64501));
        assert_eq!(geo.asn(ip(5).into()), Some(4_200_000_000));
        assert_eq!(geo.lookup(ip(3).into()).unwrap().org.as_deref(), Some("Transit UK"));
    });
    assert_eq!(lookups, "", "a readable file is not reported");
    // And through the binary.
    let target = format!("127.0.0.2:{}", listen([127, 0, 0, 2]));
    let env = [("GEOIP_ASN_DB", widths_path.to_str().unwrap())];
    let run = geoctl_in(dir.path(), &["probe", &target, "-o", "json"], &env).success();
    assert_eq!(run.json()["target_facts"]["asn"], 64500, "{}", run.stdout);

    // Numbers that are no ASN: text, past u32, negative.
    let bad = mmdb::build(
        "GeoLite2-ASN",
        &[
            (ip(2), 32, asn_as(mmdb::s("AS64500"), "Edge Net SG")),
            (ip(3), 32, asn_as(Value::U64(1 << 40), "Transit UK")),
            (ip(5), 32, asn_as(Value::I32(-1), "Private Net")),
        ],
    );
    let bad_path = dir.path().join("bad.mmdb");
    std::fs::write(&bad_path, bad).unwrap();
    let geo = geoctl::geo::GeoDb::open(None, Some(&bad_path)).unwrap();
    let lookups = logged(|| {
        for last in [2, 3, 5, 2] {
            assert_eq!(geo.lookup(ip(last).into()), None);
        }
        assert_eq!(geo.lookup(ip(4).into()), None, "no record: nothing to report");
    });
    let reports: Vec<&str> = lookups.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(reports.len(), 1, "once per file:\n{lookups}");
    assert!(reports[0].contains(&format!("GEOIP_ASN_DB {}", bad_path.display())), "{lookups}");
    assert!(reports[0].contains("do not decode"), "{lookups}");
    let env = [("GEOIP_ASN_DB", bad_path.to_str().unwrap())];
    let run = geoctl_in(dir.path(), &["probe", &target], &env).success();
    assert!(run.stderr.contains("do not decode") && run.stderr.contains("bad.mmdb"), "{}", run.stderr);
}
