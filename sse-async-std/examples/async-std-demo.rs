//! The sse-rs demo server on sse-async-std's own HTTP/1.1 loop: the demo contract of
//! DESIGN.md, on async-std tasks and `async-io` timers.
//!
//! ```text
//! cargo run --release -p sse-async-std --example async-std-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo; this file is the server loop and the handshake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_std::net::TcpListener;
use bytes::Bytes;
use futures_lite::StreamExt;
use http::{HeaderValue, Method, Response, header};
use sse_async_std::{Outcome, Reply, ServeConfig};

#[path = "../../demo/contract.rs"]
mod contract;

use contract::{Options, Route, Stats};

pub(crate) fn main() {
    async_std::task::block_on(run());
}

async fn run() {
    let opts = Options::from_args();
    let hub = contract::hub(&opts, sse_async_std::hub_builder());
    let stats = Arc::new(Stats::default());
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    println!("listening on http://{local}");

    if !opts.tick.is_zero() {
        let hub = hub.clone();
        let tick = opts.tick;
        async_std::task::spawn(async move {
            let mut next = Instant::now();
            loop {
                Timer::at(next).await;
                contract::tick(&hub);
                // Ticks missed while the process was busy are skipped, not made up in a burst.
                let now = Instant::now();
                next += tick;
                while next <= now {
                    next += tick;
                }
            }
        });
    }

    let config = ServeConfig {
        limits: sse_async_std::ReaderLimits {
            max_body: contract::MAX_BODY,
            ..Default::default()
        },
        ..Default::default()
    };
    let handler_hub = hub.clone();
    let handler = move |req: http::Request<Bytes>| {
        let hub = handler_hub.clone();
        let stats = stats.clone();
        async move { handle(&hub, &stats, req) }
    };
    let server = async {
        let _ = sse_async_std::serve(listener, config, handler).await;
    };
    futures_lite::future::or(server, ctrl_c()).await;
    // Streams end promptly without marking ids, so tabs reconnect to the next server.
    let n = hub.shutdown();
    eprintln!("demo: shutting down, ended {n} streams");
    Timer::after(Duration::from_millis(100)).await;
}

/// Resolves on the first Ctrl-C (SIGINT); never, if signals cannot be watched.
async fn ctrl_c() {
    match async_signal::Signals::new([async_signal::Signal::Int]) {
        Ok(mut signals) => {
            signals.next().await;
        }
        Err(_) => std::future::pending().await,
    }
}

fn handle(hub: &sse_async_std::Hub, stats: &Stats, req: http::Request<Bytes>) -> Reply {
    let path = req.uri().path();
    match contract::route(
        hub,
        stats,
        req.method(),
        path,
        req.uri().query(),
        req.body(),
    ) {
        Route::Reply(reply) => respond(reply),
        Route::Events if req.method() == Method::GET => {
            stats.event_request();
            match sse_async_std::handshake(hub, &req) {
                Outcome::Accept(accepted) => {
                    contract::greet(&accepted.session, accepted.continuity);
                    Reply::Stream(accepted)
                }
                Outcome::NoContent(res) => {
                    stats.no_content();
                    Reply::Response(res)
                }
                Outcome::GoAway(res) => Reply::Response(res),
                Outcome::NotEventStream(_) => respond(contract::Reply::not_acceptable()),
            }
        }
        Route::Events => respond(contract::Reply::not_acceptable()),
    }
}

fn respond(reply: contract::Reply) -> Reply {
    let mut res = Response::new(reply.body);
    *res.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    Reply::Response(res)
}
