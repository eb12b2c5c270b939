//! The server limits of every demo: the deadlines and caps a server facing the internet
//! sets, with defaults fit for one. `contract.rs` holds the flags of the demo contract; these
//! are read from the environment, so that the conformance suite's attack rules can shorten
//! them without a flag every demo would have to parse:
//!
//! ```text
//! SSE_DEMO_HEAD_TIMEOUT_MS       a whole request head, from its first byte (default 10000)
//! SSE_DEMO_BODY_TIMEOUT_MS       a request body, plus one second per 4 KiB received (10000)
//! SSE_DEMO_BODY_CEILING_MS       a request body at most, whatever its rate (default 30000)
//! SSE_DEMO_BODY_BUDGET_KIB       request bodies under way, all connections (default 65536)
//! SSE_DEMO_IDLE_TIMEOUT_MS       a connection with no request, new or kept alive (10000)
//! SSE_DEMO_MAX_UNFINISHED_HEADS  connections holding an unfinished head at once (256;
//!                                the raw-socket demos: hyper has no such cap)
//! SSE_DEMO_SHUTDOWN_TIMEOUT_MS   how long a shutdown waits for connections (default 5000)
//! ```
//!
//! A value that is not a number is ignored (the default holds) with a warning.

use std::time::Duration;

/// Bytes of request body that buy one more second for the body: a minimum rate of 4 KiB/s.
pub const MIN_BODY_RATE: u32 = 4096;

/// The limits a demo serves with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A whole request head, from its first byte.
    pub head: Duration,
    /// A request body, before the credit of its rate.
    pub body: Duration,
    /// A request body at most, whatever its rate.
    pub body_ceiling: Duration,
    /// Bytes of request bodies under way, summed over every connection.
    pub body_budget: usize,
    /// A connection with no request, new or kept alive.
    pub idle: Duration,
    /// Connections holding an unfinished head at once (the raw-socket demos: hyper has no
    /// such cap).
    pub max_unfinished_heads: usize,
    /// How long a shutdown waits for connections.
    pub shutdown: Duration,
}

impl Limits {
    /// The defaults, overridden by the `SSE_DEMO_*` variables that are set.
    pub fn from_env() -> Limits {
        let ms = |name: &str, default: u64| Duration::from_millis(var(name).unwrap_or(default));
        Limits {
            head: ms("SSE_DEMO_HEAD_TIMEOUT_MS", 10_000),
            body: ms("SSE_DEMO_BODY_TIMEOUT_MS", 10_000),
            body_ceiling: ms("SSE_DEMO_BODY_CEILING_MS", 30_000),
            body_budget: var("SSE_DEMO_BODY_BUDGET_KIB").map_or(64 << 20, |kib| {
                usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX)
            }),
            idle: ms("SSE_DEMO_IDLE_TIMEOUT_MS", 10_000),
            max_unfinished_heads: var("SSE_DEMO_MAX_UNFINISHED_HEADS")
                .map_or(256, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            shutdown: ms("SSE_DEMO_SHUTDOWN_TIMEOUT_MS", 5_000),
        }
    }
}

fn var(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("demo: ignoring {name}={value}: not a whole number");
            None
        }
    }
}
