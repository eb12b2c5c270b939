//! What the raw-socket demos (sse-tokio's and sse-async-std's, both on the sse-http1
//! driver) share: the driver's config from the demo's [`Limits`], the handler of every
//! request, and `--tls` refused.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};
use sse_http1::{BodyBudget, HeadSlots, Outcome, ReaderLimits, ReaderTimeouts, Reply, ServeConfig};

use crate::App;
use crate::limits::{Limits, MIN_BODY_RATE};
use crate::options::Options;
use crate::routes::{self, Route};

/// The driver's config: the contract's body limit and the demo's deadlines and caps.
pub fn serve_config(limits: &Limits) -> ServeConfig {
    ServeConfig {
        limits: ReaderLimits {
            max_body: routes::MAX_BODY,
            ..ReaderLimits::default()
        },
        timeouts: ReaderTimeouts {
            head: limits.head,
            body: limits.body,
            min_body_rate: MIN_BODY_RATE,
            body_ceiling: limits.body_ceiling,
            idle: limits.idle,
        },
        head_slots: HeadSlots::new(limits.max_unfinished_heads),
        body_budget: BodyBudget::new(limits.body_budget),
        shutdown_timeout: limits.shutdown,
        ..ServeConfig::default()
    }
}

/// Answers `req`: `GET /events` through `handshake` (the adapter's server's), anything else
/// by the contract's routes.
pub async fn handle<F, H>(app: &App, mut req: http::Request<Bytes>, handshake: H) -> Reply
where
    H: FnOnce(&http::Request<Bytes>) -> F,
    F: Future<Output = Outcome>,
{
    let route = routes::route(
        &app.hub,
        app.engine.as_ref(),
        &app.stats,
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.body(),
    );
    match route.await {
        Route::Reply(reply) => respond(reply),
        Route::Events if req.method() == Method::GET => {
            app.stats.event_request();
            routes::log_in(&mut req);
            match handshake(&req).await {
                Outcome::Accept(accepted) => {
                    routes::greet(
                        &accepted.session,
                        accepted.continuity,
                        &accepted.topics,
                        &accepted.topic_gaps,
                    );
                    Reply::Stream(accepted)
                }
                Outcome::NoContent(res) => {
                    app.stats.no_content();
                    Reply::Response(res)
                }
                Outcome::GoAway(res) | Outcome::BadRequest(res) => Reply::Response(res),
                Outcome::NotEventStream(_) => respond(routes::Reply::not_acceptable()),
            }
        }
        Route::Events => respond(routes::Reply::not_acceptable()),
    }
}

/// A fixed answer of the contract as a reply.
fn respond(reply: routes::Reply) -> Reply {
    let mut res = Response::new(reply.body);
    *res.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    Reply::Response(res)
}

/// Exits with code 2 when `opts` ask for TLS (`--tls`, `--cert`, `--key`): these demos speak
/// HTTP/1.1 only, so HTTPS and HTTP/2 (which browsers need to open more than six tabs of
/// one origin) come from a proxy in front of them.
pub fn refuse_tls(opts: &Options) {
    if opts.tls.is_some() {
        eprintln!(
            "demo: --tls: this demo speaks HTTP/1.1 only. For HTTPS with HTTP/2, put a \
             TLS-terminating proxy in front of it that speaks HTTP/2 to browsers and does not \
             buffer responses (nginx, Caddy: see sse_hyper::guide::http2), or run the hyper demo with --tls"
        );
        std::process::exit(2);
    }
}
