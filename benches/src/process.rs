//! What Linux's `/proc` says of a process, for the benches that measure servers from outside
//! (`fanout`, `scale`) or themselves (`resume-memory`), and how their reports print counts.

use std::time::Duration;

/// The resident set (`VmRSS` of `/proc/<pid>/status`) of process `pid`, in KiB; 0 when it
/// cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The CPU time process `pid` has used, user and system apart (`/proc/<pid>/stat`); zero when
/// it cannot be read.
pub fn cpu_times(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let mut ticks = after
        .split_whitespace()
        .skip(11)
        .map(|f| f.parse::<u64>().unwrap_or(0));
    // Clock ticks are 1/100 s on Linux.
    let mut next = || Duration::from_millis(ticks.next().unwrap_or(0) * 10);
    let user = next();
    (user, next())
}

/// `n` with a space between each group of three digits: `100 000`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_and_counts_are_grouped() {
        let me = std::process::id();
        assert!(rss_kib(me) > 0);
        let (user, system) = cpu_times(me);
        assert!(user + system < Duration::from_secs(3600));
        assert_eq!(rss_kib(u32::MAX), 0);
        assert_eq!(thousands(100_000), "100 000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1 234 567");
    }
}
