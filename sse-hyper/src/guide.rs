//! The guide: what sse-rs does and how to use it, one concept per page.
//!
//! The crate docs show the calls; these pages say what they mean for a browser tab and
//! which knob changes what. Every Rust example here is compiled as a doctest. The pages
//! use sse-hyper, but the hub, the sessions and the settings are the same in `sse-tokio`
//! and `sse-async-std`: only the serving differs ([`adapters`]).
//!
//! Start with [`sessions`]; the others can be read in any order.
//!
//! | page | what it covers |
//! | --- | --- |
//! | [`sessions`] | session ids, how a tab keeps its id, sending to one tab, closing for good (204), dropping a stream, the closed set, learning when a session ends |
//! | [`resume`] | sessions that outlive their connection: the grace period, positioned ids, exact replay, gaps and what to do about them, the logs' bounds |
//! | [`topics`] | topics (rooms) and users: who is in what, the topic rule, sending to a group, presence, resume across everything a tab is in |
//! | [`tabs`] | one id per tab: duplicated tabs, reloads, replaced streams |
//! | [`signing`] | signed ids bound to a logged-in user, key rotation, an id policy of your own |
//! | [`nodes`] | several nodes on one Redis, and what happens while Redis is away |
//! | [`http2`] | why a browser needs HTTP/2 for many tabs, HTTPS with ALPN, a proxy in front of the HTTP/1.1 adapters |
//! | [`coalescing`] | fewer writes for a little latency: the window and what it buys |
//! | [`shutdown`] | ending every stream so tabs reconnect elsewhere, and stopping the server |
//! | [`tuning`] | budgets, keep-alive, limits and deadlines, with their defaults |
//! | [`streams`] | a `Stream` of events into a session, and events out of a byte stream (a Rust client) |
//! | [`logging`] | the `tracing` events and how to turn them on |
//! | [`adapters`] | which adapter to pick, and serving with hyper without [`Server::serve`](crate::Server::serve) |

pub mod sessions {
    #![doc = include_str!("guide/sessions.md")]
}

pub mod resume {
    #![doc = include_str!("guide/resume.md")]
}

pub mod topics {
    #![doc = include_str!("guide/topics.md")]
}

pub mod tabs {
    #![doc = include_str!("guide/tabs.md")]
}

pub mod signing {
    #![doc = include_str!("guide/signing.md")]
}

pub mod nodes {
    #![doc = include_str!("guide/nodes.md")]
}

pub mod http2 {
    #![doc = include_str!("guide/http2.md")]
}

pub mod coalescing {
    #![doc = include_str!("guide/coalescing.md")]
}

pub mod shutdown {
    #![doc = include_str!("guide/shutdown.md")]
}

pub mod tuning {
    #![doc = include_str!("guide/tuning.md")]
}

pub mod streams {
    #![doc = include_str!("guide/streams.md")]
}

pub mod logging {
    #![doc = include_str!("guide/logging.md")]
}

pub mod adapters {
    #![doc = include_str!("guide/adapters.md")]
}
