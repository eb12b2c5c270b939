//! [`Store`]: a shared store that answers a hub's handshakes and carries its events to the
//! hubs of other nodes (sse-redis's engine is one), as a trait, so that the core does no I/O.

use std::future::Future;
use std::pin::Pin;

use crate::handshake::{Answers, Offer};
use crate::hub::{HubBuilder, RelayPort};

/// A boxed future that can move between threads, as [`Store`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store shared by the hubs of several nodes: it answers what a handshake needs looked up
/// (was this id closed on any node? what did this tab miss?) and relays what the hub sends
/// to the other nodes.
///
/// The hub does no I/O and never waits: the store works beside it, asynchronously. An
/// adapter's server takes one store and does, for the application:
///
/// 1. [`prepare`](Self::prepare) the hub's settings before the hub is built (relay mode, a
///    log in the store's epoch, the observers the store needs);
/// 2. spawn [`run`](Self::run) with the hub's [`RelayPort`] once the hub is built;
/// 3. on each event-stream request, ask [`answer`](Self::answer) between the hub's offer
///    and its decision ([`Hub::handshake`](crate::Hub::handshake) does this in one call).
pub trait Store: Send + Sync + 'static {
    /// Sets up `builder` for this store. Called once, with the application's settings
    /// (resume mode among them, see [`HubBuilder::resume_config`]).
    fn prepare(&self, builder: HubBuilder) -> HubBuilder;

    /// Answers the lookups of `offer` ([`Offer::lookup`]). `None` when the store cannot be
    /// reached: the hub then answers from its own stores, and serves the connection.
    fn answer<'a>(&'a self, offer: &'a Offer) -> BoxFuture<'a, Option<Answers>>;

    /// The store's work for the hub behind `port` (relaying its sends, delivering what
    /// other nodes send, keeping presence), until that hub is dropped.
    fn run(&self, port: RelayPort) -> BoxFuture<'static, ()>;
}
