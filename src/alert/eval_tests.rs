use super::*;

use chrono::TimeZone;

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn monitor(n: u128, rule: DownRule) -> MonitorView {
    MonitorView {
        id: Uuid::from_u128(n),
        name: format!("m{n}"),
        rule,
        confirm: 2,
        recover: 2,
        regions: REGIONS
            .iter()
            .map(|c| RegionView {
                code: c.to_string(),
                interval_seconds: 30,
                timeout_ms: 10_000,
                warning_ms: 200,
                critical_ms: 500,
            })
            .collect(),
    }
}

fn up(at: i64) -> Observation {
    Observation { checked_at: t(at), up: true, total_ms: Some(50.0), error: None }
}

fn slow(at: i64) -> Observation {
    Observation { checked_at: t(at), up: true, total_ms: Some(900.0), error: None }
}

fn down(at: i64) -> Observation {
    Observation { checked_at: t(at), up: false, total_ms: None, error: Some("timeout: no answer".into()) }
}

/// Results for one tick: (monitor number, region, result).
type Batch = Vec<(u128, &'static str, Observation)>;

/// A world the tests drive tick by tick, carrying open incidents like the store does.
struct World {
    settings: Settings,
    monitors: Vec<MonitorView>,
    memory: Memory,
    open: HashMap<(Cause, Subject), OpenIncident>,
    liveness: HashMap<String, Liveness>,
    maintenance: Maintenance,
    next_id: i64,
    /// Every transition so far, and whether its notifications would go out.
    log: Vec<Transition>,
    /// Judge every monitor each tick, as a leader that just read the state does.
    judge_all: bool,
}

impl World {
    fn new(monitors: Vec<MonitorView>) -> Self {
        World {
            settings: Settings::default(),
            monitors,
            memory: Memory::default(),
            open: HashMap::new(),
            liveness: HashMap::new(),
            maintenance: Maintenance::default(),
            next_id: 1,
            log: Vec::new(),
            judge_all: false,
        }
    }

    fn tick(&mut self, now: i64, results: Vec<(u128, &str, Observation)>) -> Vec<Transition> {
        let mut by_key: HashMap<(Uuid, String), Vec<Observation>> = HashMap::new();
        for (m, region, o) in results {
            by_key.entry((Uuid::from_u128(m), region.to_string())).or_default().push(o);
        }
        if self.judge_all {
            self.memory.judged = None;
        }
        let outcome = evaluate(
            &mut self.memory,
            &Tick {
                now: t(now),
                settings: &self.settings,
                monitors: &self.monitors,
                results: &by_key,
                liveness: &self.liveness,
                open: &self.open,
                maintenance: &self.maintenance,
            },
        );
        for tr in &outcome.transitions {
            match tr {
                Transition::Open(o) => {
                    let incident =
                        OpenIncident { id: self.next_id, regions: o.regions.clone(), in_maintenance: o.in_maintenance };
                    self.next_id += 1;
                    assert!(self.open.insert((o.cause, o.subject.clone()), incident).is_none(), "opened twice");
                }
                Transition::Resolve(r) => {
                    assert_eq!(self.open.remove(&(r.cause, r.subject.clone())).map(|o| o.id), Some(r.incident));
                }
                Transition::Firing { incident, .. } => {
                    for o in self.open.values_mut().filter(|o| o.id == *incident) {
                        o.in_maintenance = false;
                    }
                }
            }
        }
        self.log.extend(outcome.transitions.clone());
        outcome.transitions
    }

    fn is_open(&self, cause: Cause, subject: Subject) -> bool {
        self.open.contains_key(&(cause, subject))
    }
}

fn each_region(m: u128, f: impl Fn(&str) -> Observation) -> Batch {
    REGIONS.iter().map(|r| (m, *r, f(r))).collect()
}

fn opened(transitions: &[Transition]) -> Vec<&Opening> {
    transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Open(o) => Some(o),
            _ => None,
        })
        .collect()
}

#[test]
fn streak_flips_after_confirm_and_recover_and_resets_on_a_contrary_result() {
    let mut s = Streak::default();
    assert!(!s.observe(true, 2, 3));
    assert!(!s.observe(false, 2, 3), "a pass in between starts the count again");
    assert!(!s.observe(true, 2, 3));
    assert!(s.observe(true, 2, 3));
    assert!(s.on);
    assert!(!s.observe(false, 2, 3));
    assert!(!s.observe(false, 2, 3));
    assert!(s.observe(false, 2, 3), "recover is 3");
    assert_eq!(s, Streak::default());
}

#[test]
fn failing_in_two_of_three_opens_one_incident_after_confirm_and_resolves_after_recover() {
    let mut w = World::new(vec![monitor(1, DownRule::Majority)]);
    let failing = |at| each_region(1, move |r| if r == "ap-south" { up(at) } else { down(at) });
    assert!(w.tick(0, failing(0)).is_empty(), "one failure is not confirmed");
    let tr = w.tick(30, failing(30));
    let o = opened(&tr);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].cause, Cause::Down);
    assert_eq!(o[0].regions, ["us-east", "eu-west"]);
    assert_eq!(o[0].summary, "m1 is down in us-east and eu-west (rule: majority)");
    assert_eq!(o[0].first_error.as_deref(), Some("us-east: timeout: no answer"));
    assert!(!o[0].muted);
    assert!(w.tick(60, failing(60)).is_empty(), "still down: nothing new");
    assert!(w.tick(90, each_region(1, |_| up(90))).is_empty(), "one pass does not recover");
    let tr = w.tick(120, each_region(1, |_| up(120)));
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.incident == 1 && r.summary == "m1 is up again"));
}

#[test]
fn results_already_counted_are_not_counted_again() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.tick(0, vec![(1, "us-east", down(0))]);
    // The same result read again (the window overlaps the last tick) is no second failure.
    assert!(w.tick(5, vec![(1, "us-east", down(0))]).is_empty());
    assert_eq!(opened(&w.tick(30, vec![(1, "us-east", down(30))])).len(), 1);
}

#[test]
fn missed_runs_count_as_neither_and_a_monitor_unseen_everywhere_holds_its_state() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.tick(0, vec![(1, "us-east", down(0))]);
    // Runs missed for a while: the next failure completes the streak.
    assert_eq!(opened(&w.tick(200, vec![(1, "us-east", down(200))])).len(), 1);
    // Nothing fresh anywhere for a long time: unknown, and unknown is never up.
    assert!(w.tick(3600, vec![]).is_empty());
    assert!(w.is_open(Cause::Down, Subject::Monitor(Uuid::from_u128(1))));
}

#[test]
fn one_region_down_does_not_trip_a_majority_but_trips_any() {
    let mut w = World::new(vec![monitor(1, DownRule::Majority), monitor(2, DownRule::Any)]);
    for at in [0, 30] {
        let mut results = each_region(1, |r| if r == "eu-west" { down(at) } else { up(at) });
        results.extend(each_region(2, |r| if r == "eu-west" { down(at) } else { up(at) }));
        w.tick(at, results);
    }
    assert!(!w.is_open(Cause::Down, Subject::Monitor(Uuid::from_u128(1))));
    assert!(w.is_open(Cause::Down, Subject::Monitor(Uuid::from_u128(2))));
}

#[test]
fn slower_than_critical_in_a_majority_is_a_latency_warning() {
    let mut w = World::new(vec![monitor(1, DownRule::Majority)]);
    let mostly_slow = |at| each_region(1, move |r| if r == "ap-south" { up(at) } else { slow(at) });
    w.tick(0, mostly_slow(0));
    let tr = w.tick(30, mostly_slow(30));
    let o = opened(&tr);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].cause, o[0].cause.severity()), (Cause::Latency, "warning"));
    assert_eq!(o[0].regions, ["us-east", "eu-west"]);
    w.tick(60, each_region(1, |_| up(60)));
    let tr = w.tick(90, each_region(1, |_| up(90)));
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::Latency));
}

/// 12 monitors everywhere; eu-west sees 10 of them down, the others see all up.
fn impaired_world() -> (World, impl Fn(i64, bool) -> Batch) {
    let monitors = (1..=12).map(|n| monitor(n, DownRule::Any)).collect();
    let results = |at: i64, eu_broken: bool| {
        let mut all = Vec::new();
        for n in 1..=12u128 {
            all.extend(each_region(n, |r| if eu_broken && r == "eu-west" && n <= 10 { down(at) } else { up(at) }));
        }
        all
    };
    (World::new(monitors), results)
}

#[test]
fn a_region_seeing_most_monitors_down_that_others_see_up_is_one_region_incident_and_no_monitor_incident() {
    let (mut w, results) = impaired_world();
    w.tick(0, results(0, true));
    let tr = w.tick(30, results(30, true));
    let o = opened(&tr);
    assert_eq!(o.len(), 1, "{tr:#?}");
    assert_eq!(o[0].cause, Cause::RegionImpaired);
    assert_eq!(o[0].subject, Subject::Region("eu-west".into()));
    assert_eq!(o[0].summary, "eu-west sees 10 of 12 monitors down that ap-south and us-east see up");
    // While impaired, eu-west is left out of every rule: still no monitor incident.
    assert!(opened(&w.tick(60, results(60, true))).is_empty());
    // It recovers: the region incident resolves, and no monitor incident ever opened.
    w.tick(90, results(90, false));
    let tr = w.tick(120, results(120, false));
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::RegionImpaired));
    assert_eq!(opened(&w.log).len(), 1);
}

#[test]
fn too_few_monitors_or_too_small_a_share_is_no_region_incident() {
    let (mut w, results) = impaired_world();
    w.settings.region_impaired_min = 13;
    w.tick(0, results(0, true));
    let tr = w.tick(30, results(30, true));
    assert!(opened(&tr).iter().all(|o| o.cause == Cause::Down), "below the minimum: monitors page");
    assert_eq!(opened(&tr).len(), 10);

    let (mut w, results) = impaired_world();
    w.settings.region_impaired_ratio = 0.9;
    w.tick(0, results(0, true));
    assert!(opened(&w.tick(30, results(30, true))).iter().all(|o| o.cause == Cause::Down));
}

#[test]
fn a_target_down_from_everywhere_is_not_a_region_problem() {
    let monitors = (1..=12).map(|n| monitor(n, DownRule::Majority)).collect();
    let mut w = World::new(monitors);
    let all_down = |at| (1..=12u128).flat_map(|n| each_region(n, |_| down(at))).collect::<Vec<_>>();
    w.tick(0, all_down(0));
    let tr = w.tick(30, all_down(30));
    assert_eq!(opened(&tr).len(), 12);
    assert!(opened(&tr).iter().all(|o| o.cause == Cause::Down));
}

#[test]
fn no_live_agent_is_a_region_incident_and_its_results_are_unknown() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.liveness = REGIONS.iter().map(|r| (r.to_string(), Liveness::Live)).collect();
    w.liveness.insert("eu-west".into(), Liveness::NoAgent);
    // eu-west's last results said down; with no agent there they count for nothing.
    let tr = w.tick(0, vec![(1, "eu-west", down(0)), (1, "us-east", up(0))]);
    let o = opened(&tr);
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].cause, o[0].summary.as_str()),
        (Cause::NoAgent, "no agent in eu-west: no live heartbeat for 3 intervals; its results are unknown")
    );
    w.tick(30, vec![(1, "eu-west", down(30)), (1, "us-east", up(30))]);
    assert!(!w.is_open(Cause::Down, Subject::Monitor(Uuid::from_u128(1))));
    // An agent comes back: resolved, and what eu-west said before counts for nothing.
    w.liveness.insert("eu-west".into(), Liveness::Live);
    let tr = w.tick(60, vec![(1, "eu-west", down(60)), (1, "us-east", up(60))]);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::NoAgent), "{tr:?}");
    // It takes a new confirm streak there to open a monitor incident.
    assert_eq!(opened(&w.tick(90, vec![(1, "eu-west", down(90))])).len(), 1);
}

#[test]
fn a_region_whose_liveness_is_unknown_opens_nothing() {
    let mut w = World::new(vec![monitor(1, DownRule::Majority)]);
    assert!(w.tick(0, vec![]).is_empty());
}

#[test]
fn flapping_sends_one_flapping_event_then_mutes_until_stable_for_the_window() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.monitors[0].confirm = 1;
    w.monitors[0].recover = 1;
    let mut at = 0;
    let mut flip = |w: &mut World, bad: bool| {
        at += 30;
        w.tick(at, vec![(1, "us-east", if bad { down(at) } else { up(at) })])
    };
    for i in 0..5 {
        let tr = flip(&mut w, i % 2 == 0);
        assert!(
            tr.iter().all(
                |t| matches!(t, Transition::Open(o) if !o.muted) || matches!(t, Transition::Resolve(r) if !r.muted)
            ),
            "change {i} is sent"
        );
    }
    // The sixth change in 30 minutes: flapping, said once.
    let tr = flip(&mut w, false);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.muted && r.flapping), "{tr:?}");
    for i in 0..3 {
        let tr = flip(&mut w, i % 2 == 0);
        assert!(
            matches!(&tr[..], [Transition::Open(o)] if o.muted && !o.flapping)
                || matches!(&tr[..], [Transition::Resolve(r)] if r.muted && !r.flapping)
        );
    }
    // It stays down for the whole window: stable again, and still down, so said once more.
    let tr = w.tick(at + 31 * 60, vec![]);
    assert!(matches!(&tr[..], [Transition::Firing { reason, .. }] if reason.contains("flapping")), "{tr:?}");
    assert!(!w.memory.flaps[&Uuid::from_u128(1)].flapping);
}

#[test]
fn maintenance_records_and_mutes_and_an_incident_outliving_its_window_fires() {
    let mut w = World::new(vec![monitor(1, DownRule::Any), monitor(2, DownRule::Any)]);
    w.maintenance.monitors.insert(Uuid::from_u128(1));
    w.maintenance.regions.insert("eu-west".into());
    let results =
        |at| vec![(1, "us-east", down(at)), (2, "eu-west", down(at)), (2, "us-east", up(at)), (2, "ap-south", up(at))];
    w.tick(0, results(0));
    let tr = w.tick(30, results(30));
    let o = opened(&tr);
    assert_eq!(o.len(), 2);
    assert!(o.iter().all(|o| o.in_maintenance && o.muted), "{o:#?}");
    // The windows end while both are still down: each is announced once.
    w.maintenance = Maintenance::default();
    let tr = w.tick(60, results(60));
    assert_eq!(tr.iter().filter(|t| matches!(t, Transition::Firing { .. })).count(), 2);
    assert!(w.tick(90, results(90)).is_empty());
}

#[test]
fn a_resolve_inside_maintenance_is_muted_too() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.maintenance.monitors.insert(Uuid::from_u128(1));
    w.tick(0, vec![(1, "us-east", down(0))]);
    w.tick(30, vec![(1, "us-east", down(30))]);
    w.tick(60, vec![(1, "us-east", up(60))]);
    let tr = w.tick(90, vec![(1, "us-east", up(90))]);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.muted));
}

#[test]
fn numbers_and_lists_read_well() {
    assert_eq!(thousands(930), "930");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1234567), "1,234,567");
    assert_eq!(and_list(&["a".into()]), "a");
    assert_eq!(and_list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
}

#[test]
fn a_paused_monitor_s_open_incident_resolves_instead_of_staying_open() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.tick(0, vec![(1, "us-east", down(0))]);
    w.tick(30, vec![(1, "us-east", down(30))]);
    assert!(w.is_open(Cause::Down, Subject::Monitor(Uuid::from_u128(1))));
    w.monitors.clear();
    let tr = w.tick(60, vec![]);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.summary.starts_with("no longer evaluated")), "{tr:?}");
}

/// The tracks one evaluation reports as changed (what the store writes besides its refreshes).
fn changed(memory: &mut Memory, monitors: &[MonitorView], now: i64, batch: Batch) -> BTreeSet<(Uuid, String)> {
    let settings = Settings::default();
    let mut results: HashMap<(Uuid, String), Vec<Observation>> = HashMap::new();
    for (m, region, o) in batch {
        results.entry((Uuid::from_u128(m), region.to_string())).or_default().push(o);
    }
    let (liveness, open, maintenance) = (HashMap::new(), HashMap::new(), Maintenance::default());
    let tick = Tick {
        now: t(now),
        settings: &settings,
        monitors,
        results: &results,
        liveness: &liveness,
        open: &open,
        maintenance: &maintenance,
    };
    evaluate(memory, &tick).changed_tracks
}

#[test]
fn only_results_that_move_a_streak_are_changes_and_replaying_the_others_from_the_stored_state_is_the_same_state() {
    let monitors = vec![monitor(1, DownRule::Majority)];
    let us = (Uuid::from_u128(1), "us-east".to_string());
    let mut memory = Memory::default();
    assert!(changed(&mut memory, &monitors, 0, vec![(1, "us-east", up(0))]).is_empty(), "a pass moves nothing");
    assert_eq!(changed(&mut memory, &monitors, 30, vec![(1, "us-east", down(30))]), BTreeSet::from([us.clone()]));
    assert_eq!(changed(&mut memory, &monitors, 60, vec![(1, "us-east", down(60))]), BTreeSet::from([us.clone()]));
    assert!(memory.tracks[&us].down.on, "failing after confirm");
    // What the store wrote with the last change; the failures after it repeat the same error.
    let stored = memory.clone();
    let again = vec![(1, "us-east", down(90)), (1, "us-east", down(120))];
    assert!(changed(&mut memory, &monitors, 120, again.clone()).is_empty(), "the same failure again moves nothing");
    assert_eq!(memory.tracks[&us].last_checked_at, Some(t(120)), "its time is still kept in memory");

    // A new leader reads the stored state and replays what came after it: the same state.
    let mut replayed = stored.clone();
    changed(&mut replayed, &monitors, 121, again);
    assert_eq!(replayed.tracks[&us], memory.tracks[&us]);
    // A failure with another error is a change: the incident that opens later names it.
    let other = Observation { error: Some("refused".into()), ..down(150) };
    assert_eq!(changed(&mut memory, &monitors, 150, vec![(1, "us-east", other)]), BTreeSet::from([us]));
}

// What time alone moves, with no new result: each case still fires although the evaluator
// judges only the monitors whose inputs moved since its last evaluation.

#[test]
fn a_region_going_stale_moves_the_verdict_without_a_new_result() {
    let mut w = World::new(vec![monitor(1, DownRule::Majority)]);
    let failing = |at| vec![(1, "us-east", down(at)), (1, "eu-west", down(at)), (1, "ap-south", up(at))];
    w.tick(0, failing(0));
    assert_eq!(opened(&w.tick(30, failing(30))).len(), 1);
    // us-east and eu-west stop reporting; ap-south goes on seeing it up a while longer.
    w.tick(200, vec![(1, "ap-south", up(200))]);
    assert!(w.tick(300, vec![]).is_empty(), "everything is still fresh");
    // No result at all in this tick: us-east and eu-west went stale (300 s), ap-south is the
    // only region known, and it sees the target up.
    let tr = w.tick(331, vec![]);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::Down), "{tr:?}");
}

#[test]
fn a_region_losing_its_agents_moves_the_verdict_without_a_new_result() {
    let mut w = World::new(vec![monitor(1, DownRule::Any), monitor(2, DownRule::Any)]);
    w.liveness = REGIONS.iter().map(|r| (r.to_string(), Liveness::Live)).collect();
    w.tick(0, vec![(1, "eu-west", down(0)), (1, "us-east", up(0)), (2, "us-east", up(0))]);
    assert_eq!(opened(&w.tick(30, vec![(1, "eu-west", down(30))])).len(), 1);
    assert!(w.tick(40, vec![(2, "us-east", up(40))]).is_empty());
    // eu-west's heartbeats lapse: its results are unknown, so monitor 1 is no longer down.
    w.liveness.insert("eu-west".into(), Liveness::NoAgent);
    let tr = w.tick(50, vec![]);
    assert!(tr.iter().any(|t| matches!(t, Transition::Resolve(r) if r.cause == Cause::Down)), "{tr:?}");
    assert!(w.is_open(Cause::NoAgent, Subject::Region("eu-west".into())));
}

#[test]
fn an_impaired_region_going_stale_moves_the_verdicts_without_a_new_result() {
    let (mut w, results) = impaired_world();
    w.settings.region_impaired_ratio = 0.5;
    w.tick(0, results(0, true));
    w.tick(30, results(30, true));
    assert!(w.is_open(Cause::RegionImpaired, Subject::Region("eu-west".into())));
    // Only us-east goes on reporting, all up: eu-west's failures and ap-south's passes go stale.
    let us_east = |at| (1..=12u128).map(|n| (n, "us-east", up(at))).collect::<Vec<_>>();
    w.tick(200, us_east(200));
    let tr = w.tick(331, vec![]);
    // Nothing is judged in two regions any more: the region incident resolves, and no
    // monitor incident opens for eu-west's stale failures.
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::RegionImpaired), "{tr:?}");
    assert!(opened(&w.log).iter().all(|o| o.cause == Cause::RegionImpaired));
}

#[test]
fn a_window_ending_fires_without_a_new_result() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.maintenance.monitors.insert(Uuid::from_u128(1));
    w.tick(0, vec![(1, "us-east", down(0))]);
    assert!(opened(&w.tick(30, vec![(1, "us-east", down(30))]))[0].muted);
    assert!(w.tick(40, vec![]).is_empty());
    w.maintenance = Maintenance::default();
    let tr = w.tick(50, vec![]);
    assert!(matches!(&tr[..], [Transition::Firing { reason, .. }] if reason.contains("maintenance")), "{tr:?}");
}

#[test]
fn a_monitor_whose_inputs_did_not_move_is_not_judged_until_what_was_judged_is_forgotten() {
    let mut w = World::new(vec![monitor(1, DownRule::Any)]);
    w.tick(0, vec![(1, "us-east", down(0)), (1, "eu-west", up(0))]);
    assert_eq!(opened(&w.tick(30, vec![(1, "us-east", down(30))])).len(), 1);
    // Its rule changes; nothing the evaluator watches moved, so it is not judged again...
    w.monitors[0].rule = DownRule::All;
    assert!(w.tick(40, vec![]).is_empty());
    // ...until the store, having read the monitors again, forgets what was judged.
    w.memory.judged = None;
    let tr = w.tick(50, vec![]);
    assert!(matches!(&tr[..], [Transition::Resolve(r)] if r.cause == Cause::Down), "{tr:?}");
}

/// A small deterministic generator (xorshift), so the property below runs the same each time.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn judging_only_the_monitors_whose_inputs_moved_decides_what_judging_all_of_them_decides() {
    for seed in 1..=20u64 {
        let rules = [DownRule::Any, DownRule::Majority, DownRule::All, DownRule::AtLeast(2)];
        let monitors: Vec<MonitorView> = (1..=16u128)
            .map(|n| {
                let mut m = monitor(n, rules[n as usize % rules.len()]);
                m.confirm = 1 + (n % 2) as u32;
                m.recover = 1 + (n % 3 == 0) as u32;
                for r in &mut m.regions {
                    r.interval_seconds = if n % 4 == 0 { 200 } else { 30 };
                }
                m
            })
            .collect();
        let mut sparse = World::new(monitors.clone());
        let mut full = World::new(monitors);
        full.judge_all = true;
        for w in [&mut sparse, &mut full] {
            w.settings.region_impaired_min = 4;
            w.settings.flap_changes = 3;
        }
        let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut at = 0;
        for step in 0..300 {
            at += [5, 30, 30, 60, 200, 400][dice.below(6) as usize];
            // Some steps one region sees most things down; some steps nothing reports at all.
            let broken = REGIONS[dice.below(3) as usize];
            let broken = if dice.below(4) == 0 { Some(broken) } else { None };
            let quiet = dice.below(3) == 0;
            let mut batch: Batch = Vec::new();
            for n in 1..=16u128 {
                for r in REGIONS {
                    if quiet || dice.below(3) == 0 {
                        continue;
                    }
                    let target_down = n % 5 == (at / 600 % 5) as u128;
                    let o = match (Some(r) == broken && dice.below(5) != 0, target_down, dice.below(8)) {
                        (true, _, _) | (_, true, _) => down(at),
                        (_, _, 0) => slow(at),
                        _ => up(at),
                    };
                    batch.push((n, r, o));
                }
            }
            if dice.below(10) == 0 {
                let r = REGIONS[dice.below(3) as usize].to_string();
                let liveness = [None, Some(Liveness::Live), Some(Liveness::NoAgent)][dice.below(3) as usize];
                for w in [&mut sparse, &mut full] {
                    match liveness {
                        Some(l) => w.liveness.insert(r.clone(), l),
                        None => w.liveness.remove(&r),
                    };
                }
            }
            if dice.below(10) == 0 {
                let id = Uuid::from_u128(1 + u128::from(dice.below(16)));
                for w in [&mut sparse, &mut full] {
                    if !w.maintenance.monitors.remove(&id) {
                        w.maintenance.monitors.insert(id);
                    }
                }
            }
            let a = sparse.tick(at, batch.clone());
            let b = full.tick(at, batch);
            assert_eq!(a, b, "seed {seed}, step {step} at {at} s");
        }
        assert!(full.log.len() > 20, "seed {seed}: the run moved too little to prove anything ({})", full.log.len());
    }
}
