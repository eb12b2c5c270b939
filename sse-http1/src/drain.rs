//! Graceful shutdown: which connections are still open, and telling them to finish.
//!
//! The serve loop holds a [`Drain`]; every connection it spawns holds a [`Member`] (counted
//! while it lives) and a [`DrainSignal`] its request loop looks at. Shutdown goes through
//! three phases: running, draining (idle connections close, busy ones close after their
//! current response, streams run until the hub ends them) and forced (the bound passed:
//! whatever is still open is dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const FORCED: u8 = 2;

struct Shared {
    phase: AtomicU8,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    next_id: u64,
    /// The waker of each live connection's task, once it has been polled.
    live: HashMap<u64, Option<Waker>>,
    /// The serve loop, waiting for `live` to empty.
    server: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Members> {
        // Every step leaves the map consistent, so a panic elsewhere leaves it usable.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Moves to `phase` and wakes every connection so it sees it.
    fn enter(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.lock().live.values().flatten().cloned().collect();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The serve loop's side.
pub(crate) struct Drain(Arc<Shared>);

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain(Arc::new(Shared {
            phase: AtomicU8::new(RUNNING),
            members: Mutex::new(Members::default()),
        }))
    }

    /// Counts a new connection.
    pub(crate) fn member(&self) -> Member {
        let mut members = self.0.lock();
        let id = members.next_id;
        members.next_id += 1;
        members.live.insert(id, None);
        Member {
            shared: self.0.clone(),
            id,
            registered: None,
        }
    }

    /// Tells every connection to finish.
    pub(crate) fn start(&self) {
        self.0.enter(DRAINING);
    }

    /// Tells every connection still open to stop at once.
    pub(crate) fn force(&self) {
        self.0.enter(FORCED);
    }

    /// `Ready` once no connection is left; registers `cx` otherwise.
    pub(crate) fn poll_empty(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut members = self.0.lock();
        if members.live.is_empty() {
            return Poll::Ready(());
        }
        members.server = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One connection's membership: counted until dropped.
pub(crate) struct Member {
    shared: Arc<Shared>,
    id: u64,
    /// The waker last registered, so that polls from the same task take no lock.
    registered: Option<Waker>,
}

impl Member {
    /// What the connection's request loop looks at.
    pub(crate) fn signal(&self) -> DrainSignal {
        DrainSignal(self.shared.clone())
    }

    /// `Ready` once the shutdown's bound has passed and the connection must stop now.
    /// Registers the task, which is then also woken when draining starts.
    pub(crate) fn poll_forced(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let phase = self.shared.phase();
        if phase == FORCED {
            return Poll::Ready(());
        }
        let known = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        if !known {
            let waker = cx.waker().clone();
            self.shared.lock().live.insert(self.id, Some(waker.clone()));
            self.registered = Some(waker);
            // A phase change between the check above and the registration woke nobody.
            if self.shared.phase() != phase {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let server = {
            let mut members = self.shared.lock();
            members.live.remove(&self.id);
            if members.live.is_empty() {
                members.server.take()
            } else {
                None
            }
        };
        if let Some(server) = server {
            server.wake();
        }
    }
}

/// Whether the connection should finish: close when idle, close after the current response.
#[derive(Clone)]
pub(crate) struct DrainSignal(Arc<Shared>);

impl DrainSignal {
    pub(crate) fn is_draining(&self) -> bool {
        self.0.phase() != RUNNING
    }
}
