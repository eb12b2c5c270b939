//! The fuzz check of sse-http1's HTTP/1.1 request reader: arbitrary bytes, panics only when
//! the reader breaks a rule.
//!
//! Shared by the cargo-fuzz target (`fuzz/fuzz_targets/request.rs`) and by
//! `sse-http1/tests/fuzz_corpus.rs`, which replays `fuzz/corpus/request/*` on stable.

use std::time::Instant;

/// What a [`RequestReader`](sse_http1::proto::RequestReader) made of a stream: the requests
/// (method, target, version, body), then the error that stopped it, if any.
type ReadOutcome = (
    Vec<(String, String, String, Vec<u8>)>,
    Option<sse_http1::proto::HeadError>,
);

/// Feeds arbitrary bytes to the HTTP/1.1 request reader in splits and at times taken from
/// the first bytes: never panics, memory stays within the limits, the split never changes the
/// requests or the error, and time (or a body budget smaller than a body) can only cut the
/// stream short with a timeout (or a refusal for the budget).
pub fn request(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut rng = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let whole = run_reader(stream, &[(stream.len(), 0, false)], None);
    let mut plan = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let n = (next(48) as usize + 1).min(stream.len() - at);
        plan.push((n, 0, false));
        at += n;
    }
    assert_eq!(
        run_reader(stream, &plan, None),
        whole,
        "the split changed the result"
    );

    // The same splits, arriving over time, with extra timer wake-ups.
    for step in &mut plan {
        step.1 = next(3000);
        step.2 = next(4) == 0;
    }
    // A server-wide body budget smaller than one body: a body that spans reads may be
    // refused for it, and gives back all it took.
    let budget = sse_http1::proto::BodyBudget::new(1024);
    let (timed, end) = run_reader(stream, &plan, Some(&budget));
    assert_eq!(
        budget.in_use(),
        0,
        "a dropped reader keeps part of the budget"
    );
    assert!(
        whole.0.starts_with(&timed),
        "time changed a request: {timed:?} vs {:?}",
        whole.0
    );
    let cut_short = timed.len() < whole.0.len() || end != whole.1;
    if cut_short {
        assert!(
            matches!(
                end,
                Some(
                    sse_http1::proto::HeadError::HeadTimeout
                        | sse_http1::proto::HeadError::BodyTimeout
                        | sse_http1::proto::HeadError::Idle
                        | sse_http1::proto::HeadError::OverBudget { .. }
                )
            ),
            "time cut the stream short without a timeout: {end:?}"
        );
    }
}

/// Runs a reader over `stream` in the steps of `plan`: (bytes, milliseconds since the last
/// step, whether the timer fires before the bytes arrive).
fn run_reader(
    stream: &[u8],
    plan: &[(usize, u64, bool)],
    budget: Option<&sse_http1::proto::BodyBudget>,
) -> ReadOutcome {
    use sse_http1::proto::{MAX_CHUNK_LINE, ReaderLimits, ReaderTimeouts, RequestReader};
    use std::time::Duration;

    let limits = ReaderLimits {
        max_head: 1024,
        max_body: 2048,
    };
    let timeouts = ReaderTimeouts {
        head: Duration::from_secs(5),
        body: Duration::from_secs(2),
        min_body_rate: 256,
        body_ceiling: Duration::from_secs(6),
        idle: Duration::from_secs(8),
    };
    let mut reader = RequestReader::with_timeouts(limits, timeouts);
    if let Some(budget) = budget {
        reader = reader.with_body_budget(budget);
    }
    let mut now = Instant::now();
    reader.handle_ready(now);
    let mut requests = Vec::new();
    let mut at = 0;
    for &(n, ms, wake) in plan {
        now += Duration::from_millis(ms);
        if wake {
            if let Some(deadline) = reader.poll_timeout() {
                reader.handle_timeout(deadline.min(now));
            }
        }
        reader.handle_read(&stream[at..at + n], now);
        at += n;
        loop {
            match reader.poll_request() {
                Ok(Some(req)) => {
                    let close = sse_http1::proto::wants_close(&req);
                    requests.push((
                        req.method().to_string(),
                        req.uri().to_string(),
                        format!("{:?}", req.version()),
                        req.body().to_vec(),
                    ));
                    assert!(req.body().len() <= limits.max_body, "body over the limit");
                    if close {
                        return (requests, None);
                    }
                    reader.handle_ready(now);
                }
                Ok(None) => break,
                Err(e) => return (requests, Some(e)),
            }
        }
        let _ = reader.poll_interim();
        if let Some(budget) = budget {
            assert!(budget.in_use() <= budget.limit(), "over the body budget");
        }
        assert!(
            reader.buffered() <= limits.max_head + limits.max_body + MAX_CHUNK_LINE,
            "the reader holds {} bytes",
            reader.buffered()
        );
    }
    (requests, None)
}
