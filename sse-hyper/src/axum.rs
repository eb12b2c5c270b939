//! axum, first-class (feature `axum`): the handshake as an extractor, its outcome as a
//! response, and `serve` with the slow-reader guard.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sse_hyper::axum::Handshake;
//! use sse_hyper::{Hub, Outcome, Server};
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
//! sse_hyper::axum::serve(listener, app)
//!     .with_graceful_shutdown(async move {
//!         let _ = tokio::signal::ctrl_c().await;
//!         server.shutdown(); // every stream ends within a second: the server can stop
//!     })
//!     .await
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::{ConnectInfo, Connected, IntoMakeServiceWithConnectInfo};
use axum::extract::{FromRef, FromRequestParts};
use axum::middleware::AddExtension;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener, Serve};
use http::StatusCode;
use http::request::Parts;
use tokio::net::{TcpListener, TcpStream};

use crate::guard::{Guarded, Watch};
use crate::handshake::Outcome;
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
        if let Some(ConnectInfo(watched)) = parts.extensions.get::<ConnectInfo<Watched>>() {
            let watch = watched.watch.clone();
            parts.extensions.insert(watch);
        }
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
            Outcome::NoContent(res) | Outcome::GoAway(res) => {
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

/// A [`TcpListener`] whose connections are [`Watch`]ed: what [`serve`] listens with.
#[derive(Debug)]
pub struct WatchedListener(pub TcpListener);

impl Listener for WatchedListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded<TcpStream>, SocketAddr) {
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        (Watch::new().guard(tcp), addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A connection's [`Watch`] and peer address, as the handshake finds them in a request's
/// `ConnectInfo` under [`serve`].
#[derive(Debug, Clone)]
pub struct Watched {
    /// The connection's watch.
    pub watch: Watch,
    /// The peer.
    pub addr: SocketAddr,
}

impl Connected<IncomingStream<'_, WatchedListener>> for Watched {
    fn connect_info(stream: IncomingStream<'_, WatchedListener>) -> Watched {
        Watched {
            watch: stream.io().watch().clone(),
            addr: *stream.remote_addr(),
        }
    }
}

/// What [`serve`] returns: axum's `Serve` over a [`WatchedListener`].
pub type WatchedServe = Serve<
    WatchedListener,
    IntoMakeServiceWithConnectInfo<Router, Watched>,
    AddExtension<Router, ConnectInfo<Watched>>,
>;

/// `axum::serve` with the slow-reader guard: every connection is [`Watch`]ed, and the
/// [`Handshake`] extractor registers its streams, so a reader that stops reading loses its
/// socket as soon as its session is cut off (hyper would keep it until the kernel gives up).
/// The peer's address is in `ConnectInfo<Watched>`.
///
/// Call `with_graceful_shutdown` on the result as with `axum::serve`, and call
/// [`Server::shutdown`] when the signal comes: every stream then ends within a second.
pub fn serve(listener: TcpListener, router: Router) -> WatchedServe {
    axum::serve(
        WatchedListener(listener),
        router.into_make_service_with_connect_info::<Watched>(),
    )
}
