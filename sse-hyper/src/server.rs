//! [`Server`]: the hub on tokio's clock, its timer task, and optionally a store shared by
//! several nodes, behind one handshake call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use sse_proto::{Hub, HubBuilder, RelayPort, Request, Store};

use crate::guard::Watch;
use crate::handshake::{Outcome, now, outcome};

/// The hub, on tokio's clock, with its timer task running, and optionally a [`Store`]
/// shared by several nodes: one [`handshake`](Self::handshake) per request, the same with
/// or without the store. Cloning is cheap and shares everything.
///
/// Create it inside a tokio runtime: it spawns the hub's timer task (resume mode's expiry,
/// the shutdown's deadline, the ends of write windows) and the store's task, which end
/// when the last clone is dropped.
///
/// ```no_run
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use sse_hyper::{Event, EventStream, Hub, Outcome, Server};
///
/// async fn handle(server: Server, req: Request<hyper::body::Incoming>) -> Result<Response<EventStream>, Infallible> {
///     match server.handshake(&req).await {
///         Outcome::Accept(accepted) => {
///             accepted.session.emit("connect", "").ok();
///             Ok(accepted.response)
///         }
///         Outcome::NoContent(response) | Outcome::GoAway(response) | Outcome::BadRequest(response) => Ok(response),
///         Outcome::NotEventStream(_) => {
///             let mut res = Response::new(EventStream::empty());
///             *res.status_mut() = http::StatusCode::NOT_ACCEPTABLE;
///             Ok(res)
///         }
///     }
/// }
///
/// # async fn run() {
/// let server = Server::new(Hub::builder());
/// // Elsewhere: one tab, every tab, or end a tab's session for good.
/// # let tab = "";
/// let hub = server.hub();
/// hub.send_to(tab, &Event::named(sse_hyper::event_name!("note")).data("for one tab")).ok();
/// hub.broadcast(&Event::new().data("for every tab"));
/// hub.close(tab).ok();
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    hub: Hub,
    store: Option<Arc<dyn Store>>,
    /// Raised by a shutdown, for the serve loops.
    stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// A server with the hub of `builder`.
    pub fn new(builder: HubBuilder) -> Server {
        Server::build(builder, None)
    }

    /// A server with the hub of `builder`, prepared for `store` (several nodes on one Redis:
    /// `sse_redis::RedisEngine`), which answers every handshake's lookups and relays what
    /// the hub sends to the other nodes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sse_hyper::{Event, Hub, ResumeConfig, Server};
    /// use sse_redis::{RedisConfig, RedisEngine};
    ///
    /// let engine = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
    /// let resume = ResumeConfig::new(Duration::from_secs(120));
    /// let server = Server::with_store(Hub::builder().resume(resume), engine.clone());
    /// // `server.handshake(&req).await` for each request, as on one node; a send reaches
    /// // the tab on whichever node serves it.
    /// server.hub().broadcast(&Event::new().data("to every tab, on every node"));
    /// // Acknowledged by Redis: the count of sessions on every node.
    /// let count = engine.broadcast(Event::new().data("again").encode()).await?;
    /// # let _ = count;
    /// # Ok(()) }
    /// ```
    pub fn with_store(builder: HubBuilder, store: impl Store) -> Server {
        Server::build(builder, Some(Arc::new(store)))
    }

    fn build(builder: HubBuilder, store: Option<Arc<dyn Store>>) -> Server {
        let builder = match &store {
            Some(store) => store.prepare(builder),
            None => builder,
        };
        let hub = builder.build(now);
        tokio::spawn(
            hub.downgrade()
                .drive_timers(|at| tokio::time::sleep_until(tokio::time::Instant::from_std(at))),
        );
        if let (Some(store), Some(port)) = (&store, RelayPort::claim(&hub)) {
            tokio::spawn(store.run(port));
        }
        Server {
            shared: Arc::new(Shared {
                hub,
                store,
                stop: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// The hub: reach sessions from anywhere ([`Hub::send_to`], [`Hub::broadcast`],
    /// [`Hub::close`]).
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// Decides what to do with `req` and, for an event stream, registers its session: see
    /// [`Hub::handshake`]. With a store, the store answers what the handshake needs looked
    /// up (closed on another node? missed events?).
    ///
    /// Works for any body type: the request is only read. On [`Outcome::Accept`] the response
    /// streams everything sent to the session until it is closed, the client leaves, or the
    /// hub shuts down. When the request carries the connection's [`Watch`](crate::Watch)
    /// (the slow-reader guard), the stream is registered with it.
    pub fn handshake<B>(
        &self,
        req: &http::Request<B>,
    ) -> impl Future<Output = Outcome> + Send + use<'_, B> {
        // What the outcome needs of the request is taken now: the future does not borrow it
        // (an axum body is not `Sync`).
        let version = req.version();
        let watch = req.extensions().get::<Watch>().cloned();
        let store = self.shared.store.as_deref();
        let decision = self.shared.hub.handshake(&Request::from(req), store);
        async move { outcome(decision.await, version, watch.as_ref()) }
    }

    /// Shuts down: every stream ends after what is queued (slow ones are cut within the
    /// hub's shutdown grace) without marking ids, so tabs reconnect elsewhere, new event
    /// streams get a go-away answer, and [`serve`](Self::serve) stops accepting and returns
    /// once its connections are closed. Returns how many streams were told.
    pub fn shutdown(&self) -> usize {
        self.shared.stop.send_replace(true);
        self.shared.hub.shutdown()
    }

    /// Completes once every stream has ended (each stream's body was dropped by hyper):
    /// after [`shutdown`](Self::shutdown), to know that no tab is still being served, for an
    /// application that runs its own hyper loop. ([`serve`](Self::serve) returns only then.)
    pub async fn drained(&self) {
        std::future::poll_fn(|cx| self.shared.hub.poll_drained(cx)).await;
    }

    /// Completes once [`shutdown`](Self::shutdown) was called.
    pub async fn stopping(&self) {
        let mut stop = self.shared.stop.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
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
