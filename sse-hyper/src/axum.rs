//! axum, first-class (feature `axum`): the handshake as an extractor, its outcome as a
//! response, and [`serve`]: a router on [`Server::serve`], with every protection of it.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sse_hyper::axum::Handshake;
//! use sse_hyper::{Hub, Outcome, ServeConfig, Server};
//!
//! async fn events(Handshake(outcome): Handshake) -> Outcome {
//!     if let Outcome::Accept(accepted) = &outcome {
//!         let _ = accepted.session.emit("hello", "welcome");
//!     }
//!     outcome
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! // With several nodes on Redis: `Server::with_store(Hub::builder(), engine)`.
//! let server = Server::new(Hub::builder());
//! let app = Router::new().route("/events", get(events)).with_state(server.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let stop = server.clone();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     stop.shutdown(); // every stream ends within a second; `serve` then returns
//! });
//! sse_hyper::axum::serve(&server, listener, ServeConfig::default(), app).await
//! # }
//! ```

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::{FromRef, FromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::handshake::Outcome;
use crate::serve::{PeerAddr, ServeConfig};
use crate::server::Server;

/// The handshake, as an extractor: what to do with this request, decided by the [`Server`]
/// in the router's state (`Server: FromRef<S>`), with its store when it has one.
///
/// Return its [`Outcome`] as the response (it is [`IntoResponse`]): the event stream, the
/// 204 that stops a closed session's tab, the go-away of a hub that shuts down, or 406 for a
/// request that is not an event stream. Under [`serve`], the stream is watched so that a
/// reader that stops reading loses its socket when its session is cut off.
#[derive(Debug)]
pub struct Handshake(pub Outcome);

impl<S> FromRequestParts<S> for Handshake
where
    Server: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Handshake, Infallible> {
        let server = Server::from_ref(state);
        // The handshake reads a request; lend it the parts and take them back.
        let (empty, ()) = http::Request::new(()).into_parts();
        let req = http::Request::from_parts(std::mem::replace(parts, empty), ());
        let outcome = server.handshake(&req).await;
        *parts = req.into_parts().0;
        Ok(Handshake(outcome))
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        match self {
            Outcome::Accept(accepted) => accepted.response.map(|b| Body::new(b.into_bytes())),
            Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => {
                res.map(|b| Body::new(b.into_bytes()))
            }
            Outcome::NotEventStream(_) => (
                StatusCode::NOT_ACCEPTABLE,
                "this is an event stream: GET it with `Accept: text/event-stream`",
            )
                .into_response(),
        }
    }
}

/// Serves `router` on every connection of `listener` until [`Server::shutdown`]: see
/// [`Server::serve`] for what it guards against (deadlines for heads, bodies and idle
/// connections, a body budget, `Host` rules, the slow-reader guard) and how it shuts down.
///
/// Every request reaches the router with its body read (within [`ServeConfig::body`]), the
/// connection's [`Watch`](crate::Watch) (which the [`Handshake`] extractor registers its
/// stream with) and its peer as `ConnectInfo<SocketAddr>` in its extensions.
pub async fn serve(
    server: &Server,
    listener: TcpListener,
    config: ServeConfig,
    router: Router,
) -> std::io::Result<()> {
    let service = TowerToHyperService::new(router);
    let handler = move |req: http::Request<Bytes>| {
        let service = service.clone();
        async move {
            let peer = req.extensions().get::<PeerAddr>().copied();
            let mut req = req.map(Body::from);
            if let Some(PeerAddr(addr)) = peer {
                req.extensions_mut().insert(ConnectInfo(addr));
            }
            match service.call(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        }
    };
    server.serve(listener, config, handler).await
}
