//! [`Server`]: the hub, its optional store and the runtime's background tasks, behind one
//! handshake call; what `sse_tokio::Server` and `sse_async_std::Server` wrap.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use sse_proto::{Hub, HubBuilder, RelayPort, Request, Store};

use crate::handshake::{Outcome, outcome};
use crate::runtime::Runtime;

/// A hub with its runtime's clock and timer task, and optionally a [`Store`] shared with
/// other nodes: one [`handshake`](Self::handshake) call per request, with or without the
/// store. Cloning is cheap and shares everything.
///
/// The runtime crates wrap it with their runtime filled in (`sse_tokio::Server`,
/// `sse_async_std::Server`); use those.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    hub: Hub,
    store: Option<Arc<dyn Store>>,
    stop: Stop,
}

impl Server {
    /// Builds the hub of `builder` on `R`'s clock, prepared for `store` when there is one,
    /// and starts on `R` the hub's timer task and the store's task. Both end once the
    /// server (every clone of it) is dropped.
    pub fn new<R: Runtime>(builder: HubBuilder, store: Option<Arc<dyn Store>>) -> Server {
        let builder = match &store {
            Some(store) => store.prepare(builder),
            None => builder,
        };
        let hub = builder.build(R::now);
        R::spawn(hub.downgrade().drive_timers(R::sleep_until));
        if let (Some(store), Some(port)) = (&store, RelayPort::claim(&hub)) {
            R::spawn(store.run(port));
        }
        Server {
            shared: Arc::new(Shared {
                hub,
                store,
                stop: Stop::default(),
            }),
        }
    }

    /// The hub: reach sessions from anywhere ([`Hub::send_to`], [`Hub::broadcast`],
    /// [`Hub::close`]).
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// Decides what to do with `req` and, for an event stream, attaches it to its session:
    /// see [`Hub::handshake`]. With a store, the store answers what the handshake needs
    /// looked up (closed on another node? missed events?), and the hub's own stores when
    /// it cannot be reached.
    pub fn handshake<B>(
        &self,
        req: &http::Request<B>,
    ) -> impl Future<Output = Outcome> + Send + use<'_, B> {
        // The request is read now: the future does not borrow it.
        let version = req.version();
        let store = self.shared.store.as_deref();
        let decision = self.shared.hub.handshake(&Request::from(req), store);
        async move { outcome(decision.await, version) }
    }

    /// Shuts down: every stream ends after what is queued (slow ones are cut within the
    /// hub's shutdown grace) without marking ids, so tabs reconnect elsewhere; new event
    /// streams get a go-away answer; and a serve loop of this server stops accepting and
    /// returns once its connections are closed. Returns how many streams were told.
    pub fn shutdown(&self) -> usize {
        self.shared.stop.raise();
        self.shared.hub.shutdown()
    }

    /// Completes once every stream has ended (its connection is over).
    pub async fn drained(&self) {
        poll_fn(|cx| self.shared.hub.poll_drained(cx)).await;
    }

    /// Completes once [`shutdown`](Self::shutdown) was called.
    pub async fn stopping(&self) {
        poll_fn(|cx| self.shared.stop.poll(cx.waker())).await;
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("hub", &self.shared.hub)
            .field("store", &self.shared.store.is_some())
            .finish()
    }
}

/// A flag raised once, with the tasks waiting for it.
#[derive(Default)]
struct Stop {
    raised: AtomicBool,
    waiting: Mutex<Vec<Waker>>,
}

impl Stop {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        let waiting = std::mem::take(&mut *self.lock());
        waiting.into_iter().for_each(Waker::wake);
    }

    fn poll(&self, waker: &Waker) -> Poll<()> {
        if self.raised.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut waiting = self.lock();
        // Checked again under the lock: a raise in between has taken the list already.
        if self.raised.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
        Poll::Pending
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
