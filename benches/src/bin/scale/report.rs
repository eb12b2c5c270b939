//! The Markdown tables of one setup's figures, on stdout.

use std::time::Duration;

use sse_benches::process::thousands;

use crate::Args;
use crate::measure::{Figures, Series};

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// µs as ms with one decimal (two under 10 ms).
fn ms(us: u64) -> String {
    let ms = us as f64 / 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The nearest-rank percentile `p` of `sorted`.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A row of the latency table: over the events that reached every stream they were for.
fn latency_row(what: &str, s: &Series, until: bool) {
    let events = if s.events == s.sent {
        s.events.to_string()
    } else {
        format!("**{} of {}**", s.events, s.sent)
    };
    let until = if until && !s.until_last.is_empty() {
        let mean = s.until_last.iter().sum::<u64>() / s.until_last.len() as u64;
        let max = s.until_last.iter().copied().max().unwrap_or(0);
        format!("{} / {}", ms(mean), ms(max))
    } else {
        "—".to_owned()
    };
    let answered = match (s.answered.iter().min(), s.answered.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => thousands(*lo as u64),
        (Some(lo), Some(hi)) => format!("{}–{}", thousands(*lo as u64), thousands(*hi as u64)),
        _ => "—".to_owned(),
    };
    let at = |p: f64| {
        if s.lat.is_empty() {
            "—".to_owned()
        } else {
            ms(pct(&s.lat, p))
        }
    };
    println!(
        "| {what} | {events} | {answered} | {} | {} | {} | {} | {until} | {} |",
        thousands(s.lat.len() as u64),
        at(0.50),
        at(0.99),
        at(1.0),
        s.dups
    );
}

/// CPU seconds per second of a window.
fn load(cpu: Duration, window: Duration) -> f64 {
    cpu.as_secs_f64() / window.as_secs_f64().max(1e-9)
}

/// Prints the tables of `f`.
pub(crate) fn print(args: &Args, f: &Figures) {
    let streams = f.nodes.iter().map(|n| n.streams).sum::<usize>() as u64;
    let room: usize = f.nodes.iter().map(|n| n.room).sum();
    // Broadcasts that reached every stream (none: no CPU per delivery).
    let m = f.broadcast.events;
    let idle = crate::measure::IDLE_WINDOW;
    // CPU per delivery over the broadcasts: all of it, and what is above the idle rate (the
    // heartbeats) over the same span.
    let per_delivery = |cpu: Duration, cpu_idle: Duration, streams: u64| {
        if m == 0 {
            return "—".to_owned();
        }
        let deliveries = streams.max(1) as f64 * m as f64;
        let above = cpu.as_secs_f64() - load(cpu_idle, idle) * f.broadcasts_span.as_secs_f64();
        format!(
            "{:.1} µs ({:.1} µs)",
            cpu.as_secs_f64() * 1e6 / deliveries,
            above.max(0.0) * 1e6 / deliveries
        )
    };
    println!(
        "### {}: {} streams on {} nodes ({} in `room`), {} clients\n",
        f.kind.label(),
        thousands(streams),
        f.nodes.len(),
        thousands(room as u64),
        args.clients
    );
    println!(
        "Redis {}; every stream open in {:.1} s, Redis's memory settled {:.1} s later.\n",
        f.url,
        f.connect.as_secs_f64(),
        f.settle.as_secs_f64()
    );
    println!(
        "| node | streams | in `room` | RSS before | RSS, streams open | RSS per idle stream | CPU, broadcasts | CPU per delivery (above idle) | CPU idle | Redis away |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let (mut per_stream_sum, mut cpu_sum, mut idle_sum) = (0.0, Duration::ZERO, Duration::ZERO);
    for (i, n) in f.nodes.iter().enumerate() {
        let per_stream = n.rss_open.saturating_sub(n.rss_before) as f64 / n.streams.max(1) as f64;
        per_stream_sum += per_stream;
        cpu_sum += n.cpu_broadcasts;
        idle_sum += n.cpu_idle;
        println!(
            "| {i} | {} | {} | {} | {} | {:.0} B | {:.2} s | {} | {:.1}% | {} |",
            thousands(n.streams as u64),
            thousands(n.room as u64),
            mib(n.rss_before),
            mib(n.rss_open),
            per_stream,
            n.cpu_broadcasts.as_secs_f64(),
            per_delivery(n.cpu_broadcasts, n.cpu_idle, n.streams as u64),
            load(n.cpu_idle, idle) * 100.0,
            n.times_away,
        );
    }
    let k = f.nodes.len().max(1) as f64;
    println!(
        "| **mean** | {} | {} | | | **{:.0} B** | {:.2} s | **{}** | {:.1}% | |",
        thousands(streams / f.nodes.len().max(1) as u64),
        thousands((room / f.nodes.len().max(1)) as u64),
        per_stream_sum / k,
        cpu_sum.as_secs_f64() / k,
        per_delivery(cpu_sum, idle_sum, streams),
        load(idle_sum, idle) * 100.0 / k,
    );
    println!();
    println!(
        "Redis `used_memory`: {} before the streams, {} with them: **{:.0} B per session**.",
        mib(f.redis_before),
        mib(f.redis_after),
        f.redis_after.saturating_sub(f.redis_before) as f64 / streams.max(1) as f64
    );
    println!(
        "CPU over the {} broadcasts ({:.1} s from the first send to the last delivery, pauses \
         included): nodes {:.2} s, redis-server {:.2} s, load clients {:.2} s. Idle with every \
         stream open (over {} s): nodes {:.1}% of a core in all, redis-server {:.1}%, clients {:.1}%.\n",
        f.broadcast.sent,
        f.broadcasts_span.as_secs_f64(),
        cpu_sum.as_secs_f64(),
        f.redis_cpu_broadcasts.as_secs_f64(),
        f.clients_cpu_broadcasts.as_secs_f64(),
        idle.as_secs(),
        load(idle_sum, idle) * 100.0,
        load(f.redis_cpu_idle, idle) * 100.0,
        load(f.clients_cpu_idle, idle) * 100.0,
    );
    println!(
        "| measurement | events | the POST's count | deliveries | p50 | p99 | max | until the last stream got it (mean / max) | duplicates |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    latency_row(
        &format!("broadcast to all {} (node 0)", thousands(streams)),
        &f.broadcast,
        true,
    );
    latency_row(
        &format!(
            "publish to `room`, {} members (node 0)",
            thousands(room as u64)
        ),
        &f.publish,
        true,
    );
    latency_row(
        "send by id through another node, one at a time",
        &f.send,
        false,
    );
    println!();
    let failures = f.failures();
    if !failures.is_empty() {
        println!("Failed (the rows above are over the other events):\n");
        for failure in failures {
            println!("- {failure}");
        }
        println!();
    }
}
