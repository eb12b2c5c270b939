//! The server limits of every demo: the deadlines and caps a server facing the internet
//! sets, with defaults fit for one. `contract.rs` holds the flags of the demo contract; these
//! are read from the environment, so that the conformance suite's attack rules can shorten
//! them without a flag every demo would have to parse:
//!
//! ```text
//! SSE_DEMO_HEAD_TIMEOUT_MS       a whole request head, from its first byte (default 10000)
//! SSE_DEMO_BODY_TIMEOUT_MS       a request body, plus one second per 4 KiB received (10000)
//! SSE_DEMO_IDLE_TIMEOUT_MS       a keep-alive connection with no request (default 60000)
//! SSE_DEMO_MAX_UNFINISHED_HEADS  connections holding an unfinished head at once (256;
//!                                the raw-socket demos: hyper has no such cap)
//! SSE_DEMO_SHUTDOWN_TIMEOUT_MS   how long a shutdown waits for connections (default 5000)
//! ```
//!
//! A value that is not a number is ignored (the default holds) with a warning.

use std::time::Duration;

/// Bytes of request body that buy one more second for the body: a minimum rate of 4 KiB/s.
pub(crate) const MIN_BODY_RATE: u32 = 4096;

/// The limits a demo serves with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) head: Duration,
    pub(crate) body: Duration,
    pub(crate) idle: Duration,
    #[allow(dead_code)] // hyper has no cap on unfinished heads.
    pub(crate) max_unfinished_heads: usize,
    pub(crate) shutdown: Duration,
}

impl Limits {
    /// The defaults, overridden by the `SSE_DEMO_*` variables that are set.
    pub(crate) fn from_env() -> Limits {
        let ms = |name: &str, default: u64| Duration::from_millis(var(name).unwrap_or(default));
        Limits {
            head: ms("SSE_DEMO_HEAD_TIMEOUT_MS", 10_000),
            body: ms("SSE_DEMO_BODY_TIMEOUT_MS", 10_000),
            idle: ms("SSE_DEMO_IDLE_TIMEOUT_MS", 60_000),
            max_unfinished_heads: var("SSE_DEMO_MAX_UNFINISHED_HEADS")
                .map_or(256, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            shutdown: ms("SSE_DEMO_SHUTDOWN_TIMEOUT_MS", 5_000),
        }
    }

    /// The deadline of a body of which `received` bytes have arrived, counted from its
    /// start: `body` plus one second per [`MIN_BODY_RATE`] bytes.
    #[allow(dead_code)] // The raw-socket demos leave this to the core's reader.
    pub(crate) fn body_allowance(&self, received: usize) -> Duration {
        let credit_ms = received as u64 * 1000 / u64::from(MIN_BODY_RATE);
        self.body + Duration::from_millis(credit_ms)
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
