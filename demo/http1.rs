//! What the raw-socket demos (sse-tokio's and sse-async-std's, both on the sse-http1 driver)
//! share: the driver's config from the demo's [`Limits`], and fixed
//! answers as responses. Each demo names its adapter crate `adapter`.

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use super::adapter::{HeadSlots, ReaderLimits, ReaderTimeouts, ServeConfig};
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
            idle: limits.idle,
        },
        head_slots: HeadSlots::new(limits.max_unfinished_heads),
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
