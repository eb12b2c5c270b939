//! The sse-rs demo server on sse-tokio's own HTTP/1.1 loop: the demo contract of DESIGN.md.
//!
//! ```text
//! cargo run --release -p sse-tokio --example tokio-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo; this file is the server loop and the handshake.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};
use sse_tokio::{Outcome, Reply, ServeConfig};
use tokio::net::TcpListener;

#[path = "../../demo/contract.rs"]
mod contract;

use contract::{Options, Route, Stats};

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    let hub = contract::hub(&opts, sse_tokio::hub_builder());
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
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                contract::tick(&hub);
            }
        });
    }

    let config = ServeConfig {
        limits: sse_tokio::ReaderLimits {
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
    tokio::select! {
        _ = sse_tokio::serve(listener, config, handler) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Streams end promptly without marking ids, so tabs reconnect to the next server.
    let n = hub.shutdown();
    eprintln!("demo: shutting down, ended {n} streams");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

fn handle(hub: &sse_tokio::Hub, stats: &Stats, req: http::Request<Bytes>) -> Reply {
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
            match sse_tokio::handshake(hub, &req) {
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
