//! [`ServeConfig`] and [`Reply`].

use std::time::Duration;

use crate::proto::{BodyBudget, HeadSlots, ReaderLimits, ReaderTimeouts};
use bytes::Bytes;
use http::Response;

use crate::handshake::Accepted;

/// How a handler answers a request.
#[derive(Debug)]
pub enum Reply {
    /// A response with a fixed body. A `Connection: close` header in it (as in a go-away
    /// answer) closes the connection once it is written.
    Response(Response<Bytes>),
    /// An accepted event stream: it takes the connection over until it ends.
    Stream(Accepted),
}

impl From<Response<Bytes>> for Reply {
    fn from(res: Response<Bytes>) -> Reply {
        Reply::Response(res)
    }
}

impl From<Accepted> for Reply {
    fn from(accepted: Accepted) -> Reply {
        Reply::Stream(accepted)
    }
}

/// Default cap on connections holding an unfinished request head at once, server-wide
/// (see [`ServeConfig::head_slots`]).
pub const DEFAULT_MAX_UNFINISHED_HEADS: usize = 256;

/// Limits and deadlines of the driver.
///
/// Cloning shares [`head_slots`](Self::head_slots) and [`body_budget`](Self::body_budget):
/// build one config per server and clone it for each connection, as [`serve`](crate::serve)
/// does, so the caps are server-wide.
///
/// ```
/// use std::time::Duration;
/// use sse_http1::{HeadSlots, ReaderTimeouts, ServeConfig};
///
/// let config = ServeConfig {
///     timeouts: ReaderTimeouts { head: Duration::from_secs(5), ..Default::default() },
///     head_slots: HeadSlots::new(64),
///     ..Default::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Head and body size limits (16 KiB and 1 MiB by default). A `Content-Length` over the
    /// body limit is answered 413 at once, before any of the body is read.
    pub limits: ReaderLimits,
    /// Deadlines of a request, measured whole, never per read (RFC 9112 §9.5 leaves them to
    /// the server): the head must arrive within `head` of its first byte (10 s), the body
    /// within `body` plus one second per `min_body_rate` bytes received (10 s, 4 KiB/s) and
    /// never after `body_ceiling` (30 s), and a connection with no request is closed after
    /// `idle` (10 s), on a new connection as between keep-alive requests. A missed head or
    /// body deadline is answered 408.
    pub timeouts: ReaderTimeouts,
    /// Longest time the writing of one fixed response may take (30 s by default): a client
    /// that does not read its answers loses the connection.
    pub write_timeout: Duration,
    /// The cap on connections holding an unfinished request head at once. When every slot
    /// is taken, the connection whose head started first is answered 503 and closed: a
    /// slowloris keeps its heads unfinished, so its are the oldest, while a legitimate head
    /// arrives within a round trip. Default: [`DEFAULT_MAX_UNFINISHED_HEADS`] slots, shared
    /// by every clone of the config.
    pub head_slots: HeadSlots,
    /// The cap on bytes of request bodies that the server's connections hold at once while
    /// they arrive ([`DEFAULT_BODY_BUDGET`](crate::proto::DEFAULT_BODY_BUDGET), 64 MiB,
    /// by default, shared by every clone of the config). A body that is not whole in what
    /// was read with its head takes its length from it; one that does not fit is answered
    /// 503 with `Retry-After` at once, before any more of it is read. A body that arrives
    /// with its head never counts, so a full budget refuses no small request.
    pub body_budget: BodyBudget,
    /// How long a graceful shutdown ([`serve`](crate::serve))
    /// waits for open connections to finish before it drops them (5 s by default).
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            limits: ReaderLimits::default(),
            timeouts: ReaderTimeouts::default(),
            write_timeout: Duration::from_secs(30),
            head_slots: HeadSlots::new(DEFAULT_MAX_UNFINISHED_HEADS),
            body_budget: BodyBudget::default(),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}
