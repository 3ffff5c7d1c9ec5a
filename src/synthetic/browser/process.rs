//! The Chromium process: started in a process group of its own with a fresh
//! profile and the DevTools pipe, and always killed, reaped and cleaned up.
//!
//! Three things keep a browser from outliving its journey:
//! * [`Chromium`]'s `Drop` kills the whole process group with SIGKILL, so a
//!   timed-out or cancelled journey takes its renderers with it;
//! * `PR_SET_PDEATHSIG` (SIGKILL) makes the kernel kill the browser when the
//!   thread that started it dies, which covers SIGKILL and SIGTERM of geoctl
//!   (Chromium's helpers exit when their browser process does). The spawning
//!   thread is a Tokio runtime thread, alive as long as the runtime;
//! * the profile directory is named after geoctl's pid, so a later start
//!   removes the directories of geoctl processes that were killed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::unix::pipe;

/// Prefix of profile directories under the temporary directory.
const PROFILE_PREFIX: &str = "geoctl-chromium-";
/// The profile's settings: network prediction off ("never").
const PREFERENCES: &str = r#"{"net":{"network_prediction_options":2}}"#;
/// The most of Chromium's own log kept for an error message.
const LOG_TAIL: u64 = 2048;

/// A running headless Chromium and the two ends of its DevTools pipe.
pub struct Chromium {
    child: tokio::process::Child,
    pgid: libc::pid_t,
    profile: PathBuf,
    closed: bool,
}

/// The parent's ends of `--remote-debugging-pipe`: commands go to Chromium's
/// fd 3, replies and events come from its fd 4.
pub struct Pipe {
    pub to_browser: pipe::Sender,
    pub from_browser: pipe::Receiver,
}

impl Chromium {
    /// Starts Chromium headless on an empty profile of its own.
    pub fn launch(binary: &Path) -> io::Result<(Chromium, Pipe)> {
        sweep_stale_profiles();
        let profile = std::env::temp_dir().join(format!(
            "{PROFILE_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&profile)?;
        match Self::spawn(binary, &profile) {
            Ok(started) => Ok(started),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                Err(e)
            }
        }
    }

    fn spawn(binary: &Path, profile: &Path) -> io::Result<(Chromium, Pipe)> {
        let (browser_reads, we_write) = cloexec_pipe()?;
        let (we_read, browser_writes) = cloexec_pipe()?;
        let log = std::fs::File::create(profile.join("chromium.log"))?;
        // No speculative preconnects: a navigation that reused a connection
        // opened for it ahead of time would report no connect at all.
        std::fs::create_dir(profile.join("Default"))?;
        std::fs::write(profile.join("Default/Preferences"), PREFERENCES)?;

        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(flags(profile))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // The wrapper script and Chromium keep their crash database and
            // settings under the profile instead of the user's home.
            .env("XDG_CONFIG_HOME", profile)
            .env("XDG_CACHE_HOME", profile)
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        let (read_fd, write_fd) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        // SAFETY: only async-signal-safe calls (prctl, getppid, fcntl, dup2)
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died before prctl: nobody would ever kill us.
                if libc::getppid() != parent {
                    return Err(io::Error::other("geoctl exited while starting Chromium"));
                }
                move_fd(read_fd, 3)?;
                move_fd(write_fd, 4)
            });
        }
        let child = cmd.spawn()?;
        drop((browser_reads, browser_writes));
        let pgid = child.id().map(|id| id as libc::pid_t).unwrap_or(0);
        let chromium = Chromium { child, pgid, profile: profile.to_path_buf(), closed: false };
        let pipe = Pipe {
            to_browser: pipe::Sender::from_owned_fd(we_write)?,
            from_browser: pipe::Receiver::from_owned_fd(we_read)?,
        };
        Ok((chromium, pipe))
    }

    /// The end of Chromium's own log, for a browser that died or never answered.
    pub fn log_tail(&self) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(self.profile.join("chromium.log")) else { return String::new() };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
        let mut tail = Vec::new();
        let _ = file.read_to_end(&mut tail);
        String::from_utf8_lossy(&tail).trim().to_string()
    }

    /// Kills the browser and every process of its group, reaps it, kills
    /// what is left of it (at most a second: the crash handler leaves the
    /// group but names the profile on its command line), and removes the
    /// profile.
    pub async fn close(mut self) {
        self.kill_group();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while kill_leftovers(self.pgid, &self.profile) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.remove_profile();
        self.closed = true;
    }

    fn kill_group(&mut self) {
        if self.pgid > 0 {
            // SAFETY: plain syscall; the group is ours (process_group(0)).
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        }
        let _ = self.child.start_kill();
    }

    fn remove_profile(&self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if !self.closed {
            // A cancelled journey: Tokio reaps the killed child in the background.
            self.kill_group();
            self.remove_profile();
        }
    }
}

/// Chromium's command line. Headless, no first-run or background work, a
/// fixed window size for screenshots; `--no-sandbox` only as root, where
/// Chromium refuses to start with its sandbox. Of the features turned off:
/// no spare renderer kept warm for a next site (a process, ~80 MiB, per
/// journey), and no Local Network Access prompts, which a headless browser
/// would answer "no" to for a page calling a private address.
fn flags(profile: &Path) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--headless",
        "--remote-debugging-pipe",
        "--no-startup-window",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-breakpad",
        "--disable-extensions",
        "--disable-component-extensions-with-background-pages",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions,LocalNetworkAccessChecks,SpareRendererForSitePerProcess",
        "--metrics-recording-only",
        "--password-store=basic",
        "--use-mock-keychain",
        "--mute-audio",
        "--hide-scrollbars",
        "--window-size=1280,800",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } == 0 || sandbox_off() {
        flags.push("--no-sandbox".into());
    }
    flags.push(format!("--user-data-dir={}", profile.display()));
    flags
}

/// `CHROMIUM_SANDBOX=off`, which the browser image sets: in a container
/// without capabilities, under Docker's default seccomp profile, an
/// unprivileged Chromium can make neither the user namespaces of its own
/// sandbox nor use a setuid helper, and refuses to start. The task (nobody,
/// no capabilities, read-only root, a private /tmp) is the boundary there.
fn sandbox_off() -> bool {
    std::env::var("CHROMIUM_SANDBOX").is_ok_and(|v| v == "off")
}

/// A pipe whose both ends close on exec (the child's ends are moved to fds 3
/// and 4 explicitly).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child: puts `fd` at `target` without the close-on-exec flag. It goes
/// through a copy above both targets first, so moving one end onto 3 cannot
/// clobber the other end when that one happens to be fd 3 or 4.
fn move_fd(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: async-signal-safe syscalls on descriptors of this process.
    unsafe {
        let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
        if copy < 0 || libc::dup2(copy, target) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends SIGKILL to every running process of the group or naming the
/// profile; true when there was one (zombies do not count: they hold no
/// memory, and whoever inherited them reaps them).
fn kill_leftovers(pgid: libc::pid_t, profile: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    let profile = profile.as_os_str().as_encoded_bytes();
    let mut found = false;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ours = (pgid > 0 && running_in_group(&stat, pgid))
            || (!is_zombie(&stat)
                && std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(profile.len()).any(|w| w == profile)));
        if ours {
            // SAFETY: plain syscall on a process that is ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            found = true;
        }
    }
    found
}

/// Parses `/proc/PID/stat`: after the `)` closing the command name come the
/// state, the parent and the process group.
fn running_in_group(stat: &str, pgid: libc::pid_t) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    let group = rest.split_whitespace().nth(2).and_then(|g| g.parse::<libc::pid_t>().ok());
    group == Some(pgid) && !is_zombie(stat)
}

fn is_zombie(stat: &str) -> bool {
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("Z") | Some("X"))
}

/// Removes profile directories left by geoctl processes that no longer run
/// (killed with SIGKILL, their browser killed by the kernel).
fn sweep_stale_profiles() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) =
            name.to_str().and_then(|n| n.strip_prefix(PROFILE_PREFIX)).and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let Ok(pid) = pid.0.parse::<libc::pid_t>() else { continue };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let stat = "4242 (chro) me (x)) S 1 777 555 0 -1 4194560";
        assert!(running_in_group(stat, 777));
        assert!(!running_in_group(stat, 555), "that is the session");
        assert!(!running_in_group(stat, 1), "that is the parent");
        assert!(!running_in_group("4242 (chromium) Z 1 777 777 0", 777), "a zombie is not running");
    }

    #[test]
    fn root_runs_without_the_sandbox_and_every_run_has_its_own_profile() {
        let flags = flags(Path::new("/tmp/p"));
        assert_eq!(flags.last().unwrap(), "--user-data-dir=/tmp/p");
        // SAFETY: plain syscall.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(flags.iter().any(|f| f == "--no-sandbox"), root || sandbox_off());
    }
}
