//! [`HubBuilder`]: the settings of a [`Hub`], and resume mode's [`ResumeConfig`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::timers::Timers;
use super::{Hub, Inner, Observer, Policy, Resume, Topics, WriteWindow};
use crate::clock::Clock;
use crate::closed::{ClosedSet, MemoryClosedSet};
use crate::connection::ConnectionConfig;
use crate::handshake::HandshakeConfig;
use crate::history::{History, LogBounds, MemoryHistory};
use crate::id::{IdGenerator, IdSource, IdVerdict, SessionId, UuidV4};
use crate::lifecycle::SessionEvent;
use crate::relay::{Outbound, RelayConfig};
use crate::topic::TopicName;

/// Resume mode: sessions outlive their connection for a grace period, and every event sent
/// to them is logged so that a reconnect gets exactly what it missed.
///
/// ```
/// use std::time::Duration;
/// use sse_proto::{Hub, ResumeConfig};
///
/// let hub = Hub::builder()
///     .resume(ResumeConfig::new(Duration::from_secs(120)))
///     .build(std::time::Instant::now);
/// assert_eq!(hub.settings().resume_grace, Some(Duration::from_secs(120)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeConfig {
    /// How long a session waits for its tab after its connection ends.
    pub grace: Duration,
    /// What one reconnect may need replayed (and each log keeps).
    pub bounds: LogBounds,
    /// Most bytes all logs of the default in-memory store hold together.
    pub max_total_bytes: usize,
}

impl ResumeConfig {
    /// Sessions wait `grace` for their tab; logs have the default bounds
    /// ([`LogBounds::default`], and 64 MiB in all).
    pub fn new(grace: Duration) -> ResumeConfig {
        ResumeConfig {
            grace,
            bounds: LogBounds::default(),
            max_total_bytes: MemoryHistory::DEFAULT_MAX_TOTAL_BYTES,
        }
    }

    /// Sets the bounds of one reconnect's replay.
    pub fn bounds(mut self, bounds: LogBounds) -> ResumeConfig {
        self.bounds = bounds;
        self
    }

    /// Sets the cap on all logs together, in bytes.
    pub fn max_total_bytes(mut self, bytes: usize) -> ResumeConfig {
        self.max_total_bytes = bytes;
        self
    }
}

/// Settings for a [`Hub`]: handshake, connection limits, resume mode, the stores, the id
/// generator and the observers. The clock is given last, to [`build`](Self::build).
#[must_use]
pub struct HubBuilder {
    handshake: HandshakeConfig,
    config: ConnectionConfig,
    closed: Option<Box<dyn ClosedSet>>,
    ids: Option<Box<dyn IdGenerator>>,
    resume: Option<ResumeConfig>,
    history: Option<Box<dyn History>>,
    observers: Vec<Observer>,
    shutdown_grace: Duration,
    #[cfg(feature = "signing")]
    signing: Option<crate::signing::KeyRing>,
    policy: Option<Policy>,
    relay: Option<RelayConfig>,
    window: WriteWindow,
    topics: Topics,
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("handshake", &self.handshake)
            .field("config", &self.config)
            .field("resume", &self.resume)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl HubBuilder {
    pub(super) fn new() -> HubBuilder {
        HubBuilder {
            handshake: HandshakeConfig::new(),
            config: ConnectionConfig::default(),
            closed: None,
            ids: None,
            resume: None,
            history: None,
            observers: Vec::new(),
            shutdown_grace: Duration::from_secs(1),
            #[cfg(feature = "signing")]
            signing: None,
            policy: None,
            relay: None,
            window: WriteWindow::DEFAULT,
            topics: Topics {
                rule: None,
                max: Topics::DEFAULT_MAX,
            },
        }
    }

    /// Replaces the handshake settings.
    pub fn handshake(mut self, handshake: HandshakeConfig) -> Self {
        self.handshake = handshake;
        self
    }

    /// Sets the reconnection delay sent to browsers (default 3 s).
    pub fn retry(mut self, retry: Duration) -> Self {
        self.handshake = self.handshake.retry(retry);
        self
    }

    /// Sets the keep-alive interval; `None` turns keep-alive off (default 15 s).
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.config.keep_alive = interval;
        self
    }

    /// Sets each connection's outbox budget in bytes (default 1 MiB).
    pub fn budget(mut self, bytes: usize) -> Self {
        self.config.budget = bytes;
        self
    }

    /// Turns resume mode on (see [`ResumeConfig`]).
    pub fn resume(mut self, config: ResumeConfig) -> Self {
        self.resume = Some(config);
        self
    }

    /// Resume mode's settings, when [`resume`](Self::resume) turned it on: what a
    /// [`Store`](crate::Store) reads in [`prepare`](crate::Store::prepare) to keep its logs
    /// alike.
    pub fn resume_config(&self) -> Option<&ResumeConfig> {
        self.resume.as_ref()
    }

    /// Replaces resume mode's log store (default: a [`MemoryHistory`] with the bounds of the
    /// [`ResumeConfig`] and an epoch drawn from the id generator). Has an effect only with
    /// [`resume`](Self::resume).
    pub fn history(mut self, history: impl History + 'static) -> Self {
        self.history = Some(Box::new(history));
        self
    }

    /// Replaces the closed-id store (default: [`MemoryClosedSet::default`]).
    pub fn closed_set(mut self, set: impl ClosedSet + 'static) -> Self {
        self.closed = Some(Box::new(set));
        self
    }

    /// Replaces the id generator (default: [`UuidV4`]).
    pub fn id_generator(mut self, ids: impl IdGenerator + 'static) -> Self {
        self.ids = Some(Box::new(ids));
        self
    }

    /// Signs the session ids this hub issues with the current key of `ring`, and accepts a
    /// client id only if a key of the ring verifies it for the request's
    /// [`Principal`](crate::Principal) (feature `signing`).
    ///
    /// An id that does not verify counts as absent: the tab gets a fresh id, and the refusal
    /// is reported ([`IdRejection::Signature`](crate::IdRejection::Signature)). Verification happens before any store is
    /// consulted, so an id guessed, forged, altered or copied to another user's browser
    /// reaches nothing. An id signed by an older key is re-signed with the current one when
    /// its tab comes back: the session goes on under the new id (the observer hears
    /// [`SessionEvent::Renamed`] with both ids), so the old key
    /// can be retired once tabs had a chance to reconnect.
    ///
    /// A signed id is at most 62 bytes; with resume mode's position it stays under the
    /// 128-byte limit.
    #[cfg(feature = "signing")]
    pub fn signing(mut self, ring: crate::signing::KeyRing) -> Self {
        self.signing = Some(ring);
        self
    }

    /// Asks `policy` about every valid client id (after its signature, with signed ids),
    /// with the request's principal and where the id came from: accept it, refuse it
    /// (reported as [`IdRejection::Refused`](crate::IdRejection::Refused)), or re-issue (a fresh id, not reported).
    ///
    /// ```
    /// use sse_proto::{Hub, IdVerdict};
    ///
    /// // Ids chosen by clients must look like ours (a UUID); the rest start afresh.
    /// let hub = Hub::builder()
    ///     .id_policy(|id, _principal, _source| {
    ///         if id.len() == 36 { IdVerdict::Accept } else { IdVerdict::Reissue }
    ///     })
    ///     .build(std::time::Instant::now);
    /// # let _ = hub;
    /// ```
    pub fn id_policy(
        mut self,
        policy: impl Fn(&SessionId, Option<&[u8]>, IdSource) -> IdVerdict + Send + Sync + 'static,
    ) -> Self {
        self.policy = Some(Box::new(policy));
        self
    }

    /// Turns relay mode on: logged events and closes go to a relay that shares them with the
    /// hubs of other nodes (see [`Relayed`](crate::Relayed) and
    /// [`RelayPort::poll_outbound`](crate::RelayPort::poll_outbound)), which numbers them and
    /// delivers them back with [`RelayPort::deliver`](crate::RelayPort::deliver). With resume
    /// mode, give the hub a [`history`](Self::history) in the relay store's epoch. A
    /// [`Store`](crate::Store) does this in its [`prepare`](crate::Store::prepare).
    pub fn relay(mut self, config: RelayConfig) -> Self {
        self.relay = Some(config);
        self
    }

    /// Sets how long [`Hub::shutdown`] lets streams write what is queued before they are cut
    /// (default 1 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets how each connection's writer batches frames (default [`WriteWindow::DEFAULT`]).
    ///
    /// Without a window every frame wakes its writer at once, and a connection costs a write
    /// (a system call) per frame. With one, frames queued close together leave in one batch,
    /// as one vectored write:
    ///
    /// - [`WriteWindow::Adaptive`]: a writer that has not written for the window's length
    ///   writes at once; one that wrote more recently waits until that long after its last
    ///   write, then writes everything queued meanwhile. A quiet stream pays no latency; a
    ///   busy one writes at most once per window.
    /// - [`WriteWindow::Fixed`]: each frame queued on an idle writer opens a window of the
    ///   length; everything until it ends goes together. Every frame waits up to the length.
    ///
    /// A connection's first batch (the preamble, and what was queued with it, such as the
    /// application's first event) is never held, and a close, a cut-off, a shutdown or a
    /// replaced stream wakes the writer at once: it writes what is queued and ends without
    /// waiting for the window. The hub's timers ([`Hub::poll_timers`], which the adapters
    /// drive) end the windows: an adapter that starts no timer task must drive them itself.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sse_proto::{Hub, WriteWindow};
    ///
    /// let window = WriteWindow::Adaptive(Duration::from_millis(5));
    /// let hub = Hub::builder().write_window(window).build(std::time::Instant::now);
    /// assert_eq!(hub.settings().write_window, window);
    /// ```
    pub fn write_window(mut self, window: WriteWindow) -> Self {
        self.window = window;
        self
    }

    /// A fixed window of `window` ([`WriteWindow::Fixed`]); zero turns windows off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sse_proto::{Hub, WriteWindow};
    ///
    /// let hub = Hub::builder().coalesce(Duration::from_millis(5)).build(std::time::Instant::now);
    /// assert_eq!(hub.settings().write_window, WriteWindow::Fixed(Duration::from_millis(5)));
    /// let off = Hub::builder().coalesce(Duration::ZERO).build(std::time::Instant::now);
    /// assert_eq!(off.settings().write_window, WriteWindow::Off);
    /// ```
    pub fn coalesce(self, window: Duration) -> Self {
        self.write_window(WriteWindow::Fixed(window))
    }

    /// Sets the rule that grants topics (default: none, and a tab's `?topic=` grants nothing).
    ///
    /// `rule` is asked whether a topic may have a session of a user (the request's
    /// [`Principal`](crate::Principal), `None` without one) among its members:
    ///
    /// - at accept, for each topic the tab asks for with `?topic=` (a request, never
    ///   authority): those granted are joined, the others left out (the stream is still
    ///   accepted);
    /// - on every resume, for each topic the session is in: one no longer granted is left,
    ///   and what it published while the tab was away is withheld (not reported as a gap);
    /// - by [`Session::join`](crate::Session::join), which fails with
    ///   [`Error::TopicRefused`](crate::Error::TopicRefused) when it says no.
    ///
    /// Without a rule only the application joins sessions to topics, and nothing is checked
    /// again. It runs under the hub's locks: keep it to a lookup.
    ///
    /// ```
    /// use sse_proto::Hub;
    ///
    /// // Anyone may read `news`; `staff-*` topics are for the user `staff` alone.
    /// let hub = Hub::builder()
    ///     .topic_rule(|topic, user| match topic.as_str() {
    ///         "news" => true,
    ///         t if t.starts_with("staff-") => user == Some(&b"staff"[..]),
    ///         _ => false,
    ///     })
    ///     .build(std::time::Instant::now);
    /// # let _ = hub;
    /// ```
    pub fn topic_rule(
        mut self,
        rule: impl Fn(&TopicName, Option<&[u8]>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.topics.rule = Some(Box::new(rule));
        self
    }

    /// Sets how many topics one session may be in at once (default 64); a join past it fails
    /// with [`Error::TooManyTopics`](crate::Error::TooManyTopics). In resume mode a session
    /// also keeps up to as many stretches of past membership, for a tab that comes back
    /// from inside one.
    pub fn max_topics(mut self, max: usize) -> Self {
        self.topics.max = max;
        self
    }

    /// Calls `observer` with every [`SessionEvent`]: attached (new, resumed or with a gap),
    /// detached, expired, ended. It runs on the thread that caused the event, with no hub
    /// lock held; keep it short (forward to a channel).
    ///
    /// Observers add up: each is called, in the order they were added (a relay adds its own
    /// to keep the other nodes informed).
    pub fn observe(mut self, observer: impl Fn(&SessionEvent) + Send + Sync + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Builds the hub, which reads `clock` where no `now` is passed in (see [`Clock`]): the
    /// adapters give their runtime's clock, a test a [`ManualClock`](crate::ManualClock).
    pub fn build(self, clock: impl Clock) -> Hub {
        let ids = self.ids.unwrap_or_else(|| Box::new(UuidV4));
        let resume = self.resume.map(|config| {
            let history = self.history.unwrap_or_else(|| {
                Box::new(MemoryHistory::new(
                    epoch_from(&*ids),
                    config.bounds,
                    config.max_total_bytes,
                ))
            });
            Resume {
                grace: config.grace,
                placement: history.placement(),
                history: Mutex::new(history),
            }
        });
        let mut groups = super::groups::Groups::default();
        if let Some(resume) = &resume {
            groups.placement = resume.placement;
        }
        Hub {
            inner: Arc::new(Inner {
                clock: Box::new(clock),
                handshake: self.handshake,
                config: self.config,
                ids,
                closed: Mutex::new(
                    self.closed
                        .unwrap_or_else(|| Box::new(MemoryClosedSet::default())),
                ),
                sessions: RwLock::new(HashMap::new()),
                resume,
                observers: self.observers,
                shutting_down: AtomicBool::new(false),
                shutdown_grace: self.shutdown_grace,
                timers: Mutex::new(Timers::default()),
                #[cfg(feature = "signing")]
                signing: self.signing.map(RwLock::new),
                policy: self.policy,
                relay: self.relay.map(|config| Mutex::new(Outbound::new(config))),
                window: self.window.normalized(),
                saturated: AtomicBool::new(false),
                groups: Mutex::new(groups),
                topics: self.topics,
                streams: super::Streams::default(),
            }),
        }
    }
}

/// An epoch for a fresh in-memory log: 40 bits hashed from a fresh id (the core draws no
/// randomness of its own), short enough that a position stays a few characters.
fn epoch_from(ids: &dyn IdGenerator) -> u64 {
    let id = ids.generate();
    let hash = id
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash & ((1 << 40) - 1)
}
