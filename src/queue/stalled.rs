//! The stalled-job check, run by geoctl itself so the agent knows what it found.
//!
//! A job stays in BullMQ's `active` list while a worker holds it, and its worker
//! renews the job's lock (`<job>:lock`), which also takes the job out of the
//! queue's `stalled` set. When a worker dies its locks expire, and some worker's
//! stall check must put those jobs back in `wait` or they never run again.
//! bullmq-official 1.4.4 runs that check but reads the reply as nested where it
//! is a flat list, so it never reports a stalled job; the agent therefore skips
//! the crate's check and runs [`check`] instead, which counts what it moved.
//!
//! The protocol is BullMQ's, so Node and Python workers on the same queue take
//! part in it: one check per interval per queue, whichever worker makes it (the
//! `stalled-check` key); a check first moves the jobs the previous one marked as
//! suspects whose lock is still gone, then marks every active job as a suspect
//! for the next one. A moved job counts the stall (`stc`); one that is not a
//! scheduler's run and stalled more often than allowed is set to fail when it
//! is next taken (`defa`), as BullMQ does. The script is geoctl's own.

use std::time::Duration;

use super::{QueueError, RegionQueue};

/// Stalls a job may have before it fails (BullMQ's default, `maxStalledCount` 1). A scheduler's
/// run never fails for stalling: its next run comes anyway, and a run that was lost is a gap.
pub const MOST_STALLS: u32 = 1;

const SCRIPT: &str = r#"
-- KEYS: stalled set, wait, active, stalled-check, meta, paused, marker, events, repeat (schedulers)
-- ARGV: job key prefix, now (ms), interval (ms), stalls allowed
local stalled, wait, active, check_key, meta, paused, marker, events, schedulers =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local prefix, allowed = ARGV[1], tonumber(ARGV[4])
-- Someone checked within the interval: nothing to do until it is over.
if not redis.call("SET", check_key, ARGV[2], "PX", ARGV[3], "NX") then
  return {}
end
local is_paused = redis.call("HEXISTS", meta, "paused") == 1
local keep_events = tonumber(redis.call("HGET", meta, "opts.maxLenEvents")) or 10000
local moved = {}
for _, id in ipairs(redis.call("SMEMBERS", stalled)) do
  local job = prefix .. id
  -- A lock renewed since the last check took the job out of the set; a lock that exists now
  -- means a worker holds it again. Only a job still active and unlocked is stalled.
  if redis.call("EXISTS", job .. ":lock") == 0 and redis.call("LREM", active, 1, id) > 0 then
    local stalls = redis.call("HINCRBY", job, "stc", 1)
    local scheduler = redis.call("HGET", job, "rjk")
    local from_scheduler = scheduler and (redis.call("EXISTS", schedulers .. ":" .. scheduler) == 1
      or redis.call("ZSCORE", schedulers, scheduler))
    if stalls > allowed and not from_scheduler then
      redis.call("HSET", job, "defa", "job stalled more than allowable limit")
    end
    -- At the end workers take from, so it runs next; the marker wakes a waiting worker.
    if is_paused then
      redis.call("RPUSH", paused, id)
    else
      redis.call("RPUSH", wait, id)
      redis.call("ZADD", marker, 0, "0")
    end
    redis.call("XADD", events, "MAXLEN", "~", keep_events, "*", "event", "waiting", "jobId", id, "prev", "active")
    redis.call("XADD", events, "MAXLEN", "~", keep_events, "*", "event", "stalled", "jobId", id)
    moved[#moved + 1] = id
  end
end
redis.call("DEL", stalled)
local now_active = redis.call("LRANGE", active, 0, -1)
for first = 1, #now_active, 5000 do
  redis.call("SADD", stalled, unpack(now_active, first, math.min(first + 4999, #now_active)))
end
return moved
"#;

/// Runs one stall check on `queue` (unless another worker ran one within `interval`) and
/// returns the ids of the jobs it moved back to wait: the jobs whose worker died holding them.
pub async fn check(queue: &RegionQueue, interval: Duration) -> Result<Vec<String>, QueueError> {
    let keys = queue.bull().keys();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0);
    let script = redis::Script::new(SCRIPT);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.stalled())
        .key(keys.wait())
        .key(keys.active())
        .key(keys.stalled_check())
        .key(keys.meta())
        .key(keys.paused())
        .key(keys.marker())
        .key(keys.events())
        .key(keys.repeat())
        .arg(keys.key_prefix())
        .arg(now_ms)
        .arg(interval.as_millis().max(1) as u64)
        .arg(MOST_STALLS);
    let mut conn = queue.connection();
    queue.redis("checking for stalled jobs", invocation.invoke_async(&mut conn)).await
}
