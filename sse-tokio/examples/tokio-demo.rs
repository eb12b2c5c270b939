//! The sse-rs demo server on sse-tokio's own HTTP/1.1 loop: the demo contract of DESIGN.md.
//!
//! ```text
//! cargo run --release -p sse-tokio --example tokio-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The contract's routes, options and limits are the workspace's `sse-demo` crate, with the
//! handler the two raw-socket demos share; this file is the server's set-up on tokio.

use std::sync::Arc;

use bytes::Bytes;
use sse_demo::{App, Options, Stats, limits::Limits, raw, routes, signal};
use sse_tokio::Server;
use tokio::net::TcpListener;

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    raw::refuse_tls(&opts);
    let engine = match opts.redis.clone() {
        Some(config) => Some(sse_demo::connect(config, tokio::time::sleep).await),
        None => None,
    };
    let server = match engine.clone() {
        Some(engine) => Server::with_store(opts.settings(), engine),
        None => Server::new(opts.settings()),
    };
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
        let hub = server.hub().clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                routes::tick(&hub);
            }
        });
    }
    // On SIGINT or SIGTERM: stop accepting, close idle connections, end every stream
    // without marking ids (tabs reconnect to the next server), and return once every
    // connection is closed (or the shutdown bound has passed).
    let stop = server.clone();
    tokio::spawn(async move {
        signal::shutdown().await;
        let n = stop.shutdown();
        eprintln!("demo: shutting down, ending {n} streams");
    });
    let app = Arc::new(App {
        hub: server.hub().clone(),
        engine,
        stats: Stats::default(),
    });
    let handler = {
        let server = server.clone();
        move |req: http::Request<Bytes>| {
            let (app, server) = (app.clone(), server.clone());
            async move { raw::handle(&app, req, |req| server.handshake(req)).await }
        }
    };
    let config = raw::serve_config(&Limits::from_env());
    if let Err(e) = server.serve(listener, config, handler).await {
        eprintln!("demo: {e}");
    }
}
