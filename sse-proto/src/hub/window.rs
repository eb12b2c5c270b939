//! The write window: how a connection's writer batches what is queued on it.
//!
//! Every write is a system call (and on HTTP/1.1 a chunk): a writer woken for each frame
//! writes once per frame, which is what a fan-out to many connections spends most of its
//! time on. A window lets frames queued close together leave in one vectored write. The
//! fixed window charges every frame its length; the adaptive one, like Nagle's algorithm,
//! delays only what comes while the previous write is recent, so a quiet stream writes at
//! once and a busy one at most once per window.

use std::time::{Duration, Instant};

/// How a connection's writer batches frames ([`HubBuilder::write_window`]).
///
/// [`HubBuilder::write_window`]: crate::HubBuilder::write_window
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteWindow {
    /// Each frame wakes the writer at once: one write per frame unless the writer is busy
    /// (what is queued while it writes goes in its next write).
    Off,
    /// Each frame queued on an idle writer opens a window of this length; what is queued
    /// until it ends goes in one write. Every frame waits up to the length.
    Fixed(Duration),
    /// A writer that last wrote longer ago than this length writes at once; one that wrote
    /// more recently waits until this long after its last write, then writes everything
    /// queued meanwhile in one write. A quiet stream pays no latency; a busy one writes at
    /// most once per length. Under load (a writer that woke late last time, because the
    /// runtime is busy writing to many streams) the window stretches with that lag, up to 3
    /// lengths, and what comes within 20 lengths of the last write waits a length even
    /// after a pause, as with a fixed window. When events outrun the writes (most writers
    /// were still busy with one fan-out when the next came), a writer 4 lengths late or
    /// more stretches up to 64 lengths: the server batches until it catches up, and events
    /// paced slower than it writes are not held.
    Adaptive(Duration),
}

impl WriteWindow {
    /// The default: adaptive, 5 ms. In BENCHMARKS.md section 5 it costs no latency to speak
    /// of when events are 50 ms apart (p50 within 13 % of no window's on every adapter)
    /// and, back to back at 1 000 streams, cuts the CPU per delivery to a quarter or a third
    /// of no window's, with p99 within 25 ms.
    pub const DEFAULT: WriteWindow = WriteWindow::Adaptive(Duration::from_millis(5));

    /// The window's length; `None` when off (or of length zero).
    #[must_use]
    pub fn length(self) -> Option<Duration> {
        match self {
            WriteWindow::Off => None,
            WriteWindow::Fixed(d) | WriteWindow::Adaptive(d) => Some(d).filter(|d| !d.is_zero()),
        }
    }

    /// The window as the hub applies it: a zero length is off.
    pub(crate) fn normalized(self) -> WriteWindow {
        if self.length().is_none() {
            WriteWindow::Off
        } else {
            self
        }
    }
}

impl Default for WriteWindow {
    fn default() -> WriteWindow {
        WriteWindow::DEFAULT
    }
}

/// A writer's recent writes, as the adaptive window reads them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cadence {
    /// When the writer last took a batch.
    last_write: Option<Instant>,
    /// When the writer was last woken for a batch (or its window ended), until it takes it.
    woken_at: Option<Instant>,
    /// How long the writer took, the last time it was woken, to take its batch: how far
    /// behind the runtime runs (µs).
    lag_us: u32,
}

impl Cadence {
    /// The writer was woken, or its window ended, at `at`.
    pub(crate) fn woken(&mut self, at: Instant) {
        self.woken_at = Some(at);
    }

    /// The writer took a batch at `now`.
    pub(crate) fn wrote(&mut self, now: Instant) {
        self.last_write = Some(now);
        if let Some(at) = self.woken_at.take() {
            let lag = now.saturating_duration_since(at).as_micros();
            self.lag_us = u32::try_from(lag).unwrap_or(u32::MAX);
        }
    }

    /// How long after its last write a writer holds what comes: the window's length, or,
    /// when the writer woke late last time (the server is busy writing to many streams),
    /// [`LAG_FACTOR`] times that lag, up to [`MAX_STRETCH`] times the length. A server that
    /// runs late batches more, which is what lets it catch up: back to back at 1 000
    /// streams, the lag alone (a factor of 1) saved a quarter of the writes, a factor of 4
    /// four fifths (BENCHMARKS.md, section 5). With the hub `saturated` and the writer
    /// [`LAG_FACTOR`] lengths late or more, up to [`MAX_SATURATED_STRETCH`] times the
    /// length: back to back at 10 000 streams, where one broadcast takes about 100 ms to
    /// write, 3 lengths (15 ms) let the next broadcast find each writer quiet again.
    fn span(&self, length: Duration, saturated: bool) -> Duration {
        let lag = Duration::from_micros(u64::from(self.lag_us));
        let most = if saturated && lag >= length * LAG_FACTOR {
            MAX_SATURATED_STRETCH
        } else {
            MAX_STRETCH
        };
        (lag * LAG_FACTOR).clamp(length, length * most)
    }

    /// Whether the writer woke a window's length or more late last time, and wrote within
    /// [`LATE_HORIZON`] windows of `now`: a lag measured longer ago says nothing about how
    /// busy the runtime is now (a tab that got a broadcast to 100 000 streams, then nothing
    /// for seconds, is sent one event: it goes at once).
    fn is_late(&self, length: Duration, now: Instant) -> bool {
        Duration::from_micros(u64::from(self.lag_us)) >= length
            && self
                .last_write
                .is_some_and(|at| now.saturating_duration_since(at) < length * LATE_HORIZON)
    }
}

/// How many windows after its last write a writer that woke late still counts as late (100
/// ms at the default 5 ms). Back to back at 10 000 streams a writer's next event comes
/// within it; at 100 000 streams on six nodes, a send by id right after a publish to 10 000
/// of them was held a window with 100 windows (p99 6.9 ms, BENCHMARKS.md section 9), and is
/// not with 20 (0.76 ms).
const LATE_HORIZON: u32 = 20;

/// How many times a writer's lag an adaptive window stretches to.
const LAG_FACTOR: u32 = 4;

/// How many times its length an adaptive window stretches at most: the latency it may add
/// under load (15 ms at the default 5 ms). Back to back at 1 000 streams, 3 lengths kept
/// p99 within 25 ms where 4 gave 26–29 ms, at the same CPU per delivery; 2 lengths wrote
/// half as often again (BENCHMARKS.md, section 5).
const MAX_STRETCH: u32 = 3;

/// How many times its length an adaptive window stretches at most while the hub is
/// saturated (most writers still busy with the previous fan-out when the next one came) and
/// the writer woke [`LAG_FACTOR`] lengths late or more (320 ms at the default 5 ms). Gated
/// on saturation, a stretch this long costs nothing to events paced slower than the server
/// writes (one every 200 ms to 10 000 streams: p99 unchanged), where the same stretch for
/// every late writer added 90 ms (BENCHMARKS.md, section 5).
const MAX_SATURATED_STRETCH: u32 = 64;

/// The window as of one delivery: the clock is read once, so that the windows a broadcast
/// opens on a fixed length end together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub(crate) now: Instant,
    pub(crate) window: WriteWindow,
    /// Whether most writers were still busy at the last fan-out.
    pub(crate) saturated: bool,
}

impl Pacing {
    /// When the window a frame queued now opens ends; `None` when the writer is to be woken
    /// now (or, busy, takes the frame when it asks next). `idle`: whether the writer waits
    /// for frames now.
    pub(crate) fn window_end(&self, cadence: &Cadence, idle: bool) -> Option<Instant> {
        match self.window {
            WriteWindow::Off => None,
            WriteWindow::Fixed(length) => Some(self.now + length),
            // A busy writer decides when it asks (see `hold_until`).
            WriteWindow::Adaptive(_) if !idle => None,
            WriteWindow::Adaptive(_) => self.window.hold_until(cadence, self.now, self.saturated),
        }
    }
}

impl WriteWindow {
    /// Adaptive: until when a writer with this cadence, finding frames queued at `now`,
    /// holds them; `None` to write now.
    pub(crate) fn hold_until(
        self,
        cadence: &Cadence,
        now: Instant,
        saturated: bool,
    ) -> Option<Instant> {
        let WriteWindow::Adaptive(length) = self else {
            return None;
        };
        // Within the span of the last write: until its end.
        let recent = cadence
            .last_write
            .map(|at| at + cadence.span(length, saturated))
            .filter(|&end| end > now);
        // Woken late last time (the server runs behind, writing to many streams): a window
        // from now, as the fixed window does, even after a pause since the last write (up to
        // the horizon).
        // Not waking this writer now is what lets the server catch up and the next events
        // join this one.
        let late = cadence.is_late(length, now).then(|| now + length);
        match (recent, late) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_holds_only_after_a_recent_write() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let w = WriteWindow::Adaptive(ms(5));
        let mut c = Cadence::default();
        // Never wrote: at once.
        assert_eq!(w.hold_until(&c, t0, false), None);
        c.wrote(t0);
        // Wrote 5 ms ago or more: at once.
        assert_eq!(w.hold_until(&c, t0 + ms(5), false), None);
        assert_eq!(w.hold_until(&c, t0 + ms(9), false), None);
        // Wrote 1 ms ago: until 5 ms after that write.
        assert_eq!(w.hold_until(&c, t0 + ms(1), false), Some(t0 + ms(5)));
        let pacing = Pacing {
            now: t0 + ms(1),
            window: w,
            saturated: false,
        };
        assert_eq!(pacing.window_end(&c, true), Some(t0 + ms(5)));
        // A busy writer is not woken; it looks when it asks.
        assert_eq!(pacing.window_end(&c, false), None);
        // Fixed: the length from now, whatever the last write.
        let fixed = Pacing {
            now: t0 + ms(1),
            window: WriteWindow::Fixed(ms(5)),
            saturated: false,
        };
        assert_eq!(fixed.window_end(&c, true), Some(t0 + ms(6)));
        assert_eq!(WriteWindow::Fixed(ms(0)).normalized(), WriteWindow::Off);
        assert_eq!(WriteWindow::Off.length(), None);
    }

    #[test]
    fn a_writer_that_woke_late_holds_four_times_its_lag_and_a_window_after_a_pause() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let w = WriteWindow::Adaptive(ms(5));
        let mut c = Cadence::default();
        // Woken at t0, it ran 3 ms later: it holds what comes for 4 × 3 ms after that write.
        c.woken(t0);
        c.wrote(t0 + ms(3));
        assert_eq!(w.hold_until(&c, t0 + ms(10), false), Some(t0 + ms(15)));
        // 50 ms late: three windows at most.
        c.woken(t0 + ms(20));
        c.wrote(t0 + ms(70));
        assert_eq!(w.hold_until(&c, t0 + ms(71), false), Some(t0 + ms(85)));
        // Late, and quiet since: what comes is held a window from when it comes.
        assert_eq!(w.hold_until(&c, t0 + ms(95), false), Some(t0 + ms(100)));
        // On time again: one window after the last write, and nothing after a pause.
        c.woken(t0 + ms(100));
        c.wrote(t0 + ms(100));
        assert_eq!(w.hold_until(&c, t0 + ms(101), false), Some(t0 + ms(105)));
        assert_eq!(w.hold_until(&c, t0 + ms(150), false), None);
        // A batch taken without a wake-up (the writer was busy) keeps the last lag.
        c.woken(t0 + ms(200));
        c.wrote(t0 + ms(202));
        c.wrote(t0 + ms(210));
        assert_eq!(w.hold_until(&c, t0 + ms(211), false), Some(t0 + ms(218)));
    }

    #[test]
    fn a_writer_that_woke_late_long_ago_writes_at_once() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let w = WriteWindow::Adaptive(ms(5));
        let mut c = Cadence::default();
        // 50 ms late (a broadcast to many streams).
        c.woken(t0);
        c.wrote(t0 + ms(50));
        // Quiet since, but within the horizon: still late, a window from now.
        assert_eq!(w.hold_until(&c, t0 + ms(149), false), Some(t0 + ms(154)));
        // Quiet for the horizon (20 windows): the lag is stale, the event goes at once.
        assert_eq!(w.hold_until(&c, t0 + ms(150), false), None);
        assert_eq!(w.hold_until(&c, t0 + ms(5_000), false), None);
    }

    #[test]
    fn a_saturated_hub_stretches_a_late_writers_window_further() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let w = WriteWindow::Adaptive(ms(5));
        let mut c = Cadence::default();
        // 50 ms late: three windows at most (15 ms) ...
        c.woken(t0);
        c.wrote(t0 + ms(50));
        assert_eq!(w.hold_until(&c, t0 + ms(51), false), Some(t0 + ms(65)));
        // ... unless most writers were busy at the last fan-out: four times its lag.
        assert_eq!(w.hold_until(&c, t0 + ms(51), true), Some(t0 + ms(250)));
        // 2 s late: 64 windows at most (320 ms).
        c.woken(t0 + ms(300));
        c.wrote(t0 + ms(2_300));
        assert_eq!(w.hold_until(&c, t0 + ms(2_301), true), Some(t0 + ms(2_620)));
        // 10 ms late (under four windows): saturated or not, three windows at most.
        c.woken(t0 + ms(3_000));
        c.wrote(t0 + ms(3_010));
        assert_eq!(w.hold_until(&c, t0 + ms(3_011), true), Some(t0 + ms(3_025)));
        // On time: nothing after a pause, saturated or not.
        c.woken(t0 + ms(4_000));
        c.wrote(t0 + ms(4_000));
        assert_eq!(w.hold_until(&c, t0 + ms(4_050), true), None);
    }
}
