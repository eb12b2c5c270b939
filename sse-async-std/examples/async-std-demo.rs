//! The sse-rs demo server on sse-async-std's own HTTP/1.1 loop: the demo contract of
//! DESIGN.md, on async-std tasks and `async-io` timers.
//!
//! ```text
//! cargo run --release -p sse-async-std --example async-std-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The contract's routes, options and limits are the workspace's `sse-demo` crate, with the
//! handler the two raw-socket demos share; this file is the server's set-up on async-std.

use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use async_std::net::TcpListener;
use bytes::Bytes;
use sse_async_std::Server;
use sse_demo::{App, Options, Stats, limits::Limits, raw, routes, signal};

pub(crate) fn main() {
    async_std::task::block_on(run());
}

async fn run() {
    let opts = Options::from_args();
    raw::refuse_tls(&opts);
    let engine = match opts.redis.clone() {
        // async-io's timer: the reactor async-std runs on (and redis-rs's smol side).
        Some(config) => Some(
            sse_demo::connect(config, |d| async move {
                Timer::after(d).await;
            })
            .await,
        ),
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
        let tick = opts.tick;
        async_std::task::spawn(async move {
            let mut next = Instant::now();
            loop {
                Timer::at(next).await;
                routes::tick(&hub);
                // Ticks missed while the process was busy are skipped, not made up in a burst.
                let now = Instant::now();
                next += tick;
                while next <= now {
                    next += tick;
                }
            }
        });
    }
    // On SIGINT or SIGTERM: stop accepting, close idle connections, end every stream
    // without marking ids (tabs reconnect to the next server), and return once every
    // connection is closed (or the shutdown bound has passed).
    let stop = server.clone();
    async_std::task::spawn(async move {
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
