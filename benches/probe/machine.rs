//! What the machine and this process's network namespace did: CPU time of
//! processes and of the whole machine, peak RSS, and the kernel's drop counters.

use std::time::Instant;

/// User plus system CPU time of a process, seconds (`/proc/PID/stat`, in
/// USER_HZ ticks, which are 1/100 s on Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

/// What the watched processes, the whole machine and the kernel did while
/// some loops ran, summed over those loops: CPU time of each watched process,
/// the machine's busy share, and what the kernel dropped in this namespace
/// (DNS queries for a full socket buffer, SYNs for a full accept queue).
#[derive(Debug, Default)]
pub struct Usage {
    loops: u32,
    wall_s: f64,
    cpu_s: Vec<Option<f64>>,
    /// Busy and total jiffies of all cores.
    jiffies: Option<(u64, u64)>,
    pub dns_drops: Option<u64>,
    pub syn_drops: Option<u64>,
}

struct Snapshot {
    at: Instant,
    cpu_s: Vec<Option<f64>>,
    jiffies: Option<(u64, u64)>,
    dns_drops: Option<u64>,
    syn_drops: Option<u64>,
}

impl Snapshot {
    fn take(pids: &[u32]) -> Self {
        Snapshot {
            at: Instant::now(),
            cpu_s: pids.iter().map(|&p| cpu_seconds(p)).collect(),
            jiffies: machine_jiffies(),
            dns_drops: kernel_counter("snmp", "Udp", "RcvbufErrors"),
            syn_drops: kernel_counter("netstat", "TcpExt", "ListenDrops"),
        }
    }
}

/// `sum + (after - before)`, where a first loop starts the sum.
fn add_delta(first: bool, sum: Option<u64>, before: Option<u64>, after: Option<u64>) -> Option<u64> {
    let delta = after?.checked_sub(before?)?;
    if first {
        Some(delta)
    } else {
        Some(sum? + delta)
    }
}

impl Usage {
    /// Runs `work`, adding what happened meanwhile; `pids` are the processes to
    /// watch, the same on every call.
    pub async fn measure<T>(&mut self, pids: &[u32], work: impl std::future::Future<Output = T>) -> T {
        let before = Snapshot::take(pids);
        let output = work.await;
        let after = Snapshot::take(pids);
        let first = self.loops == 0;
        self.wall_s += after.at.duration_since(before.at).as_secs_f64();
        let cpu = before.cpu_s.iter().zip(&after.cpu_s).map(|(b, a)| Some((*a)? - (*b)?));
        self.cpu_s =
            if first { cpu.collect() } else { self.cpu_s.iter().zip(cpu).map(|(sum, d)| Some((*sum)? + d?)).collect() };
        let busy = add_delta(first, self.jiffies.map(|j| j.0), before.jiffies.map(|j| j.0), after.jiffies.map(|j| j.0));
        let total =
            add_delta(first, self.jiffies.map(|j| j.1), before.jiffies.map(|j| j.1), after.jiffies.map(|j| j.1));
        self.jiffies = busy.zip(total);
        self.dns_drops = add_delta(first, self.dns_drops, before.dns_drops, after.dns_drops);
        self.syn_drops = add_delta(first, self.syn_drops, before.syn_drops, after.syn_drops);
        self.loops += 1;
        output
    }

    /// CPU seconds of the `i`th watched process.
    pub fn cpu_s(&self, i: usize) -> Option<f64> {
        self.cpu_s.get(i).copied().flatten()
    }

    /// CPU of the `i`th watched process, % of one core.
    pub fn cpu_pct(&self, i: usize) -> Option<f64> {
        Some(self.cpu_s(i)? / self.wall_s.max(1e-9) * 100.0)
    }

    /// Busy share of all cores, %.
    pub fn machine_busy_pct(&self) -> Option<f64> {
        let (busy, total) = self.jiffies?;
        (total > 0).then(|| busy as f64 / total as f64 * 100.0)
    }
}

/// A counter of this process's network namespace from `/proc/self/net/{file}`
/// (`snmp` or `netstat`), where each section is a line of names followed by a
/// line of values.
pub fn kernel_counter(file: &str, section: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/net/{file}")).ok()?;
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next()?, lines.next()?);
    names.split_whitespace().zip(values.split_whitespace()).find(|(n, _)| *n == name)?.1.parse().ok()
}
