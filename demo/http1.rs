//! What the raw-socket demos (sse-tokio's and sse-async-std's, both on the sse-http1 driver)
//! share: the driver's config from the demo's [`Limits`], and fixed
//! answers as responses. Each demo names its adapter crate `adapter`.

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use super::adapter::{BodyBudget, HeadSlots, ReaderLimits, ReaderTimeouts, ServeConfig};
use super::contract;
use super::limits::{Limits, MIN_BODY_RATE};

/// The driver's config: the contract's body limit and the demo's deadlines and cap.
pub(crate) fn serve_config(limits: &Limits) -> ServeConfig {
    ServeConfig {
        limits: ReaderLimits {
            max_body: contract::MAX_BODY,
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

/// A fixed answer of the contract as a response.
pub(crate) fn response(reply: contract::Reply) -> Response<Bytes> {
    let mut res = Response::new(reply.body);
    *res.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    res
}

/// Exits with code 2 when `opts` ask for TLS (`--tls`, `--cert`, `--key`): these demos speak
/// HTTP/1.1 only, so HTTPS and HTTP/2 (which browsers need to open more than six tabs of
/// one origin) come from a proxy in front of them.
pub(crate) fn refuse_tls(opts: &contract::Options) {
    if opts.tls.is_some() {
        eprintln!(
            "demo: --tls: this demo speaks HTTP/1.1 only. For HTTPS with HTTP/2, put a \
             TLS-terminating proxy in front of it that speaks HTTP/2 to browsers and does not \
             buffer responses (nginx, Caddy: see sse_hyper::guide::http2), or run the hyper demo with --tls"
        );
        std::process::exit(2);
    }
}
