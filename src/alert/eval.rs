//! The evaluation: one pure function from what the last tick left and what
//! arrived since to the new state and the incident transitions.
//!
//! The rules, in the order [`evaluate`] applies them each tick:
//! 1. **Streaks.** Each new result of a (monitor, region) moves that pair's
//!    verdict: failing after `confirm` consecutive failures, passing after
//!    `recover` consecutive passes; a missed run is no result, so it counts as
//!    neither. A second streak does the same for "slower than the critical
//!    threshold" over passing results.
//! 2. **Agents.** A region whose Redis was read and holds no live heartbeat
//!    (none refreshed for 3 intervals) is a `no_agent` region incident, and its
//!    results are *unknown*.
//! 3. **Region impairment.** A region where at least `region_impaired_ratio` of
//!    at least `region_impaired_min` monitors fail while another region sees
//!    them pass is a `region_impaired` incident. It stays impaired until the
//!    share falls below half the ratio, so a region recovering monitor by
//!    monitor does not flap between impaired and counted.
//! 4. **Monitors.** The monitor's own down rule ([`crate::results::status::overall`])
//!    over its regions — leaving out regions with no agent, impaired regions and
//!    regions with no fresh result — opens a `down` incident on the transition to
//!    down and resolves it when the rule no longer holds; no known region at all
//!    holds the current state (unknown is never up). The same rule over the
//!    regions slower than their critical threshold is a `latency` warning.
//! 5. **Flapping.** More than `flap_changes` down/up changes within
//!    `flap_window` emits one `flapping` event; the opens and resolves after it
//!    are recorded but muted until the monitor is stable for the window.
//! 6. **Maintenance.** Incidents whose subject is in a window are recorded,
//!    marked and muted; one still open when its window (or flapping) ends is
//!    announced again with a `firing` event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{and_list, thousands, Cause, Settings, Subject};
use crate::monitor::DownRule;
use crate::results::status::{fresh_for, overall, RegionStatus, State};

/// One recorded run, as the evaluator reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub checked_at: DateTime<Utc>,
    pub up: bool,
    pub total_ms: Option<f64>,
    pub error: Option<String>,
}

/// A verdict that flips only after a streak of contrary observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    /// The verdict: failing (or slow) when true.
    pub on: bool,
    /// Consecutive observations contrary to the verdict so far.
    pub toward: u32,
}

impl Streak {
    /// Counts one observation (`bad`: failed, or slow); returns whether the verdict flipped.
    pub fn observe(&mut self, bad: bool, confirm: u32, recover: u32) -> bool {
        if bad == self.on {
            self.toward = 0;
            return false;
        }
        self.toward += 1;
        let needed = if self.on { recover } else { confirm };
        if self.toward >= needed.max(1) {
            *self = Streak { on: bad, toward: 0 };
            true
        } else {
            false
        }
    }
}

/// What the evaluator keeps of one monitor in one region between ticks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Track {
    pub down: Streak,
    pub slow: Streak,
    /// The newest result counted: older ones arriving later are not counted again.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// The newest failure's error, for the incident that failure opens.
    pub last_error: Option<String>,
}

/// A monitor's recent down/up changes, for flapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flap {
    pub changes: Vec<DateTime<Utc>>,
    pub flapping: bool,
}

/// The evaluator's state: everything it needs besides the open incidents.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub tracks: HashMap<(Uuid, String), Track>,
    pub flaps: HashMap<Uuid, Flap>,
    /// What the last evaluation of this memory saw, so the next judges again only the monitors
    /// whose verdict may have moved since. `None` (state just read from the database, monitors
    /// read again) judges every monitor.
    pub judged: Option<Judged>,
}

/// The inputs of the last evaluation that move every monitor's verdict at once: when it ran
/// (a region's results go stale with time alone) and which regions it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub at: DateTime<Utc>,
    pub no_agent: BTreeSet<String>,
    pub impaired: BTreeSet<String>,
}

/// A monitor as the evaluator needs it.
#[derive(Debug, Clone)]
pub struct MonitorView {
    pub id: Uuid,
    pub name: String,
    pub rule: DownRule,
    pub confirm: u32,
    pub recover: u32,
    pub regions: Vec<RegionView>,
}

/// One enabled region of a monitor, with the overrides that apply there.
#[derive(Debug, Clone)]
pub struct RegionView {
    pub code: String,
    pub interval_seconds: i32,
    /// The check's timeout there: its result commits at most this (and the recording) after it started.
    pub timeout_ms: i32,
    pub warning_ms: i32,
    pub critical_ms: i32,
}

/// What a region's heartbeats say. A region missing from [`Tick::liveness`]
/// could not be asked (no Redis configured here, or unreachable): its results
/// are judged on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Liveness {
    Live,
    NoAgent,
}

/// An incident that is open now.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    pub id: i64,
    pub regions: Vec<String>,
    pub in_maintenance: bool,
}

/// The maintenance windows in force now.
#[derive(Debug, Clone, Default)]
pub struct Maintenance {
    pub monitors: HashSet<Uuid>,
    pub regions: HashSet<String>,
}

impl Maintenance {
    /// A monitor's incident is covered by its own window, or when every region
    /// it fails in is in one.
    fn covers_monitor(&self, id: Uuid, regions: &[String]) -> bool {
        self.monitors.contains(&id) || (!regions.is_empty() && regions.iter().all(|r| self.regions.contains(r)))
    }

    fn covers(&self, subject: &Subject, regions: &[String]) -> bool {
        match subject {
            Subject::Monitor(id) => self.covers_monitor(*id, regions),
            Subject::Region(code) => self.regions.contains(code),
        }
    }
}

/// Everything one tick evaluates.
pub struct Tick<'a> {
    pub now: DateTime<Utc>,
    pub settings: &'a Settings,
    pub monitors: &'a [MonitorView],
    /// New results per (monitor, region), oldest first.
    pub results: &'a HashMap<(Uuid, String), Vec<Observation>>,
    pub liveness: &'a HashMap<String, Liveness>,
    pub open: &'a HashMap<(Cause, Subject), OpenIncident>,
    pub maintenance: &'a Maintenance,
}

/// An incident to open.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub subject: Subject,
    pub cause: Cause,
    pub summary: String,
    pub regions: Vec<String>,
    pub first_error: Option<String>,
    pub in_maintenance: bool,
    /// Recorded but not sent (maintenance, or the monitor is flapping).
    pub muted: bool,
    /// This change started flapping: a `flapping` event follows.
    pub flapping: bool,
}

/// An incident to resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub incident: i64,
    pub subject: Subject,
    pub cause: Cause,
    pub summary: String,
    /// The incident opened in maintenance: nothing about it is sent.
    pub in_maintenance: bool,
    /// Recorded but not sent (maintenance, or the monitor is flapping).
    pub muted: bool,
    /// This change started flapping: a `flapping` event follows.
    pub flapping: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Open(Opening),
    Resolve(Resolution),
    /// An open incident whose notifications were held (maintenance or
    /// flapping) is announced again; it leaves maintenance.
    Firing {
        incident: i64,
        reason: String,
    },
}

/// What a tick decided: the transitions, and which parts of [`Memory`] changed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub transitions: Vec<Transition>,
    /// Tracks whose streaks or last error moved (not those that only saw a newer result).
    pub changed_tracks: BTreeSet<(Uuid, String)>,
    pub changed_flaps: BTreeSet<Uuid>,
}

/// Evaluates one tick: updates `memory` and returns the transitions. Pure, so
/// the leader and the tests run the same rules.
pub fn evaluate(memory: &mut Memory, tick: &Tick) -> Outcome {
    let mut out = Outcome::default();
    let no_agent: HashSet<&str> =
        tick.liveness.iter().filter(|(_, l)| **l == Liveness::NoAgent).map(|(r, _)| r.as_str()).collect();
    let index: HashMap<Uuid, &MonitorView> = tick.monitors.iter().map(|m| (m.id, m)).collect();
    count_results(memory, tick, &index, &no_agent, &mut out);
    let known = |m: &MonitorView, r: &RegionView| -> Option<&Track> {
        if no_agent.contains(r.code.as_str()) {
            return None;
        }
        let track = memory.tracks.get(&(m.id, r.code.clone()))?;
        track.last_checked_at.filter(|t| tick.now - *t <= fresh_for(r.interval_seconds))?;
        Some(track)
    };

    agents(tick, &mut out);
    let impaired = impairment(tick, &known, &mut out);
    let judged = Judged {
        at: tick.now,
        no_agent: no_agent.iter().map(|r| r.to_string()).collect(),
        impaired: impaired.iter().cloned().collect(),
    };
    let to_judge = moved_since(memory, tick, &index, &judged, &out);

    let mut resolved: HashSet<i64> = HashSet::new();
    for m in tick.monitors {
        if to_judge.as_ref().is_some_and(|ids| !ids.contains(&m.id)) {
            continue;
        }
        let excluded = |r: &RegionView| impaired.contains(r.code.as_str());
        let mut down_regions = Vec::new();
        let mut slow_regions = Vec::new();
        for r in &m.regions {
            let track = if excluded(r) { None } else { known(m, r) };
            let (down, slow) = match track {
                None => (State::Unknown, State::Unknown),
                Some(t) if t.down.on => (State::Down, State::Unknown),
                Some(t) => (State::Up, if t.slow.on { State::Down } else { State::Up }),
            };
            down_regions.push(region_status(r, down, track));
            slow_regions.push(region_status(r, slow, track));
        }
        let (down, failing, _) = overall(m.rule, &down_regions);
        let subject = Subject::Monitor(m.id);

        let first_error = failing.iter().find_map(|code| {
            let error = memory.tracks.get(&(m.id, code.clone()))?.last_error.as_ref()?;
            Some(format!("{code}: {error}"))
        });
        match (tick.open.get(&(Cause::Down, subject.clone())), down) {
            (None, State::Down) => {
                let (muted, flapping) = flap_change(&mut memory.flaps, &mut out, m.id, tick);
                let in_maintenance = tick.maintenance.covers_monitor(m.id, &failing);
                out.transitions.push(Transition::Open(Opening {
                    subject: subject.clone(),
                    cause: Cause::Down,
                    summary: format!("{} is down in {} (rule: {})", m.name, and_list(&failing), m.rule),
                    regions: failing.clone(),
                    first_error,
                    in_maintenance,
                    muted: muted || in_maintenance,
                    flapping,
                }));
            }
            (Some(open), State::Up | State::Degraded) => {
                let (muted, flapping) = flap_change(&mut memory.flaps, &mut out, m.id, tick);
                resolved.insert(open.id);
                out.transitions.push(Transition::Resolve(Resolution {
                    incident: open.id,
                    subject: subject.clone(),
                    cause: Cause::Down,
                    summary: format!("{} is up again", m.name),
                    in_maintenance: open.in_maintenance,
                    muted: muted || open.in_maintenance,
                    flapping,
                }));
            }
            // Unknown everywhere holds the verdict: not seeing a target is not seeing it up.
            _ => {}
        }

        let (slow, slow_in, _) = overall(m.rule, &slow_regions);
        match (tick.open.get(&(Cause::Latency, subject.clone())), slow) {
            (None, State::Down) if down != State::Down => {
                let in_maintenance = tick.maintenance.covers_monitor(m.id, &slow_in);
                out.transitions.push(Transition::Open(Opening {
                    subject,
                    cause: Cause::Latency,
                    summary: format!("{} is slower than its critical threshold in {}", m.name, and_list(&slow_in)),
                    regions: slow_in,
                    first_error: None,
                    in_maintenance,
                    muted: in_maintenance,
                    flapping: false,
                }));
            }
            (Some(open), State::Up | State::Degraded) => {
                resolved.insert(open.id);
                out.transitions.push(Transition::Resolve(Resolution {
                    incident: open.id,
                    subject,
                    cause: Cause::Latency,
                    summary: format!("{} is back under its critical latency threshold", m.name),
                    in_maintenance: open.in_maintenance,
                    muted: open.in_maintenance,
                    flapping: false,
                }));
            }
            _ => {}
        }
    }
    no_longer_evaluated(tick, &mut out);
    for t in &out.transitions {
        if let Transition::Resolve(r) = t {
            resolved.insert(r.incident);
        }
    }
    held_back(memory, tick, &resolved, &mut out);
    memory.judged = Some(judged);
    out
}

/// The monitors whose verdict may differ from the last evaluation's (`None`: all of them).
/// Rule 4 judges only these: a monitor none of whose inputs moved has the verdict it had, and
/// the last evaluation already opened or resolved its incidents for it. Its inputs are its
/// tracks, which move with its new results (and their freshness), the regions left out (no
/// agent, impaired), its settings and the open incidents. The last two change between ticks
/// only by hand or through another alerter, and the store then reads the monitors or the
/// state again, which forgets [`Memory::judged`]. Freshness is the one input time moves alone:
/// a track known at the last evaluation and stale now puts its monitor back.
///
/// What time moves for the other rules (agents, impairment, flapping calming down, maintenance
/// windows ending, monitors no longer evaluated) is decided over every region, flap and open
/// incident each tick, as before.
fn moved_since(
    memory: &Memory,
    tick: &Tick,
    index: &HashMap<Uuid, &MonitorView>,
    now: &Judged,
    out: &Outcome,
) -> Option<HashSet<Uuid>> {
    let last = memory.judged.as_ref()?;
    if last.at > now.at || last.no_agent != now.no_agent || last.impaired != now.impaired {
        return None;
    }
    let mut moved: HashSet<Uuid> = tick.results.keys().map(|(id, _)| *id).collect();
    moved.extend(out.changed_tracks.iter().map(|(id, _)| *id));
    for ((id, code), track) in &memory.tracks {
        let (Some(checked), Some(m)) = (track.last_checked_at, index.get(id)) else { continue };
        let Some(r) = m.regions.iter().find(|r| &r.code == code) else { continue };
        let fresh = fresh_for(r.interval_seconds);
        if last.at - checked <= fresh && now.at - checked > fresh {
            moved.insert(*id);
        }
    }
    Some(moved)
}

/// A monitor paused, deleted from every region or left with no enabled
/// region is no longer evaluated: its open incidents resolve rather than stay
/// open for ever.
fn no_longer_evaluated(tick: &Tick, out: &mut Outcome) {
    let evaluated: HashSet<Uuid> = tick.monitors.iter().map(|m| m.id).collect();
    let mut gone: Vec<(&(Cause, Subject), &OpenIncident)> =
        tick.open.iter().filter(|((_, s), _)| matches!(s, Subject::Monitor(id) if !evaluated.contains(id))).collect();
    gone.sort_by_key(|(_, o)| o.id);
    for ((cause, subject), open) in gone {
        out.transitions.push(Transition::Resolve(Resolution {
            incident: open.id,
            subject: subject.clone(),
            cause: *cause,
            summary: "no longer evaluated: the monitor is paused or runs in no enabled region".into(),
            in_maintenance: open.in_maintenance,
            muted: open.in_maintenance,
            flapping: false,
        }));
    }
}

/// Rule 1: each new result moves its (monitor, region) streaks. In a region
/// with no agent every streak starts again: what it said before is unknown
/// now, and when agents return it takes a new `confirm` streak to fail there.
fn count_results(
    memory: &mut Memory,
    tick: &Tick,
    index: &HashMap<Uuid, &MonitorView>,
    no_agent: &HashSet<&str>,
    out: &mut Outcome,
) {
    if !no_agent.is_empty() {
        for m in tick.monitors {
            for r in m.regions.iter().filter(|r| no_agent.contains(r.code.as_str())) {
                let key = (m.id, r.code.clone());
                if let Some(track) = memory.tracks.get_mut(&key) {
                    if track.down != Streak::default() || track.slow != Streak::default() {
                        track.down = Streak::default();
                        track.slow = Streak::default();
                        out.changed_tracks.insert(key);
                    }
                }
            }
        }
    }
    // Only the pairs with new results, not every monitor in every region: most have none.
    for (key, results) in tick.results {
        if no_agent.contains(key.1.as_str()) {
            continue;
        }
        let Some(m) = index.get(&key.0) else { continue };
        let Some(r) = m.regions.iter().find(|r| r.code == key.1) else { continue };
        let track = memory.tracks.entry(key.clone()).or_default();
        let before = (track.down, track.slow, track.last_error.clone());
        for o in results {
            if track.last_checked_at.is_some_and(|t| o.checked_at <= t) {
                continue;
            }
            track.down.observe(!o.up, m.confirm, m.recover);
            if o.up {
                let slow = o.total_ms.is_some_and(|t| t > f64::from(r.critical_ms));
                track.slow.observe(slow, m.confirm, m.recover);
            } else {
                track.last_error.clone_from(&o.error);
            }
            track.last_checked_at = Some(o.checked_at);
        }
        // A result that moved nothing but the newest time is not a change: replaying it from
        // the state before gives the same state, so the store need not write it (see
        // `store`'s `Evaluator` for how the newest time is kept fresh enough).
        if (track.down, track.slow, track.last_error.clone()) != before {
            out.changed_tracks.insert(key.clone());
        }
    }
}

/// Rule 2: a region without a live agent is a region incident.
fn agents(tick: &Tick, out: &mut Outcome) {
    let mut regions: Vec<(&String, &Liveness)> = tick.liveness.iter().collect();
    regions.sort();
    for (code, liveness) in regions {
        let subject = Subject::Region(code.clone());
        match (tick.open.get(&(Cause::NoAgent, subject.clone())), liveness) {
            (None, Liveness::NoAgent) => out.transitions.push(region_opening(
                tick,
                subject,
                Cause::NoAgent,
                format!("no agent in {code}: no live heartbeat for 3 intervals; its results are unknown"),
            )),
            (Some(open), Liveness::Live) => out.transitions.push(Transition::Resolve(Resolution {
                incident: open.id,
                subject,
                cause: Cause::NoAgent,
                summary: format!("an agent is back in {code}"),
                in_maintenance: open.in_maintenance,
                muted: open.in_maintenance,
                flapping: false,
            })),
            _ => {}
        }
    }
}

/// Rule 3: regions that see most monitors down that others see up. Returns
/// the regions impaired after this tick, which no monitor's rule counts.
fn impairment<'t>(
    tick: &Tick,
    known: &impl Fn(&MonitorView, &RegionView) -> Option<&'t Track>,
    out: &mut Outcome,
) -> HashSet<String> {
    // Per region: monitors judged there that some other region also judges, and
    // those failing there while another region sees them pass.
    let mut tally: BTreeMap<&str, (usize, usize, BTreeSet<&str>)> = BTreeMap::new();
    for m in tick.monitors {
        let seen: Vec<(&RegionView, &Track)> = m.regions.iter().filter_map(|r| Some((r, known(m, r)?))).collect();
        for (r, track) in &seen {
            let others: Vec<&(&RegionView, &Track)> = seen.iter().filter(|(o, _)| o.code != r.code).collect();
            if others.is_empty() {
                continue;
            }
            let entry = tally.entry(r.code.as_str()).or_default();
            entry.0 += 1;
            let up_elsewhere: Vec<&str> =
                others.iter().filter(|(_, t)| !t.down.on).map(|(o, _)| o.code.as_str()).collect();
            if track.down.on && !up_elsewhere.is_empty() {
                entry.1 += 1;
                entry.2.extend(up_elsewhere);
            }
        }
    }
    let ratio = tick.settings.region_impaired_ratio;
    let mut impaired = HashSet::new();
    let mut regions: BTreeSet<&str> = tally.keys().copied().collect();
    regions.extend(tick.open.keys().filter_map(|(cause, s)| match (cause, s) {
        (Cause::RegionImpaired, Subject::Region(code)) => Some(code.as_str()),
        _ => None,
    }));
    for code in regions {
        let (judged, failing, up_in) = tally.get(code).cloned().unwrap_or_default();
        let subject = Subject::Region(code.to_string());
        let open = tick.open.get(&(Cause::RegionImpaired, subject.clone()));
        let share = if judged == 0 { 0.0 } else { failing as f64 / judged as f64 };
        let holds = match open {
            Some(_) => judged > 0 && share >= ratio / 2.0,
            None => judged >= tick.settings.region_impaired_min && share >= ratio,
        };
        if holds {
            impaired.insert(code.to_string());
        }
        match (open, holds) {
            (None, true) => {
                let up_in: Vec<String> = up_in.into_iter().map(String::from).collect();
                out.transitions.push(region_opening(
                    tick,
                    subject,
                    Cause::RegionImpaired,
                    format!(
                        "{code} sees {} of {} monitors down that {} see{} up",
                        thousands(failing),
                        thousands(judged),
                        and_list(&up_in),
                        if up_in.len() == 1 { "s" } else { "" }
                    ),
                ))
            }
            (Some(open), false) => out.transitions.push(Transition::Resolve(Resolution {
                incident: open.id,
                subject,
                cause: Cause::RegionImpaired,
                summary: format!("{code} sees its monitors as the other regions do again"),
                in_maintenance: open.in_maintenance,
                muted: open.in_maintenance,
                flapping: false,
            })),
            _ => {}
        }
    }
    impaired
}

fn region_opening(tick: &Tick, subject: Subject, cause: Cause, summary: String) -> Transition {
    let Subject::Region(code) = &subject else { unreachable!("region incidents are about a region") };
    let in_maintenance = tick.maintenance.regions.contains(code);
    Transition::Open(Opening {
        regions: vec![code.clone()],
        subject,
        cause,
        summary,
        first_error: None,
        in_maintenance,
        muted: in_maintenance,
        flapping: false,
    })
}

fn region_status(r: &RegionView, state: State, track: Option<&Track>) -> RegionStatus {
    RegionStatus {
        region: r.code.clone(),
        state,
        checked_at: track.and_then(|t| t.last_checked_at),
        total_ms: None,
        latency_warning_ms: r.warning_ms,
        latency_critical_ms: r.critical_ms,
        error_kind: None,
        error_message: track.and_then(|t| t.last_error.clone()),
    }
}

/// Rule 5: records one down/up change; returns (muted, started flapping).
fn flap_change(flaps: &mut HashMap<Uuid, Flap>, out: &mut Outcome, id: Uuid, tick: &Tick) -> (bool, bool) {
    let window = chrono::Duration::from_std(tick.settings.flap_window).unwrap_or(chrono::Duration::MAX);
    let flap = flaps.entry(id).or_default();
    flap.changes.retain(|t| tick.now - *t < window);
    flap.changes.push(tick.now);
    out.changed_flaps.insert(id);
    if !flap.flapping && flap.changes.len() > tick.settings.flap_changes {
        flap.flapping = true;
        return (true, true);
    }
    (flap.flapping, false)
}

/// Rules 5 and 6, the ends: flapping that has calmed down and windows that
/// have closed release the incidents they held back.
fn held_back(memory: &mut Memory, tick: &Tick, resolved: &HashSet<i64>, out: &mut Outcome) {
    let window = chrono::Duration::from_std(tick.settings.flap_window).unwrap_or(chrono::Duration::MAX);
    let mut announced: HashSet<i64> = HashSet::new();
    let mut calmed: Vec<Uuid> = memory
        .flaps
        .iter()
        .filter(|(_, f)| f.flapping && f.changes.last().is_none_or(|t| tick.now - *t >= window))
        .map(|(id, _)| *id)
        .collect();
    calmed.sort();
    for id in calmed {
        memory.flaps.insert(id, Flap::default());
        out.changed_flaps.insert(id);
        if let Some(open) = tick.open.get(&(Cause::Down, Subject::Monitor(id))) {
            if !resolved.contains(&open.id) && !open.in_maintenance {
                announced.insert(open.id);
                out.transitions.push(Transition::Firing {
                    incident: open.id,
                    reason: "stable again after flapping, and still down".into(),
                });
            }
        }
    }
    let mut open: Vec<(&(Cause, Subject), &OpenIncident)> = tick.open.iter().collect();
    open.sort_by_key(|(_, o)| o.id);
    for ((_, subject), incident) in open {
        if incident.in_maintenance
            && !resolved.contains(&incident.id)
            && !announced.contains(&incident.id)
            && !tick.maintenance.covers(subject, &incident.regions)
        {
            out.transitions.push(Transition::Firing {
                incident: incident.id,
                reason: "the maintenance window ended, and it is still open".into(),
            });
        }
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
