//! [`Clock`]: the time a [`Hub`](crate::Hub) reads where its caller has none to pass, given
//! to it when it is built; and [`ManualClock`], a clock that tests move by hand.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A monotonic clock, passed to [`HubBuilder::build`](crate::HubBuilder::build).
///
/// The hub never reads the system's clock: where a method takes no `now` (a close or a
/// shutdown called by the application, a connection dropped by its writer, a coalescing
/// window opened by a send), it asks the clock it was given. The adapters give their
/// runtime's clock, so that the hub agrees with their timers (and with tokio's paused time
/// in tests); a test of the core gives a [`ManualClock`].
///
/// Any `Fn() -> Instant` is a clock:
///
/// ```
/// use sse_proto::Hub;
///
/// let hub = Hub::builder().build(std::time::Instant::now);
/// # let _ = hub;
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current instant. Never goes backwards.
    fn now(&self) -> Instant;
}

impl<F> Clock for F
where
    F: Fn() -> Instant + Send + Sync + 'static,
{
    fn now(&self) -> Instant {
        self()
    }
}

/// A [`Clock`] that stands still until it is moved: for deterministic tests of code that
/// reads a hub's clock. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use sse_proto::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    /// A clock at the current instant, which then stands still.
    pub fn new() -> ManualClock {
        ManualClock::starting_at(Instant::now())
    }

    /// A clock at `start`.
    pub fn starting_at(start: Instant) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Moves the clock to `to`; an instant before the current one leaves it where it is,
    /// so the clock never goes backwards.
    pub fn set(&self, to: Instant) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = (*now).max(to);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}
