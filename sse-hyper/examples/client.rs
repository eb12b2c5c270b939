//! A Rust client of an sse-rs server (any of the demos), on `reqwest`: it reads events with
//! [`sse_hyper::MessageStream`], and reconnects as a browser does, with `Last-Event-ID` and
//! after the server's `retry:`, until the server answers 204 (the session was closed).
//!
//! ```text
//! cargo run -p sse-hyper --example hyper-demo -- --resume-ms 60000 &
//! cargo run -p sse-hyper --example client -- http://127.0.0.1:8080/events
//! ```

use std::time::Duration;

use futures_lite::StreamExt;
use sse_hyper::MessageStream;

/// What ended [`follow`].
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The server answered 204: the session was closed, do not reconnect.
    Closed,
    /// The server answered something that is not an event stream (per the WHATWG rules, do
    /// not reconnect either): the status.
    Refused(u16),
    /// `on_event` asked to stop.
    Stopped,
}

/// Follows the event stream at `url`, calling `on_event` with each event and the number of
/// the connection it came on (1 for the first); `on_event` returns `false` to stop. Network
/// errors and ended streams reconnect after the last `retry:` (3 s until the server says),
/// offering the last event id.
pub async fn follow(
    url: &str,
    mut on_event: impl FnMut(&sse_hyper::MessageEvent, usize) -> bool,
) -> Result<End, reqwest::Error> {
    let client = reqwest::Client::new();
    let mut last_event_id = String::new();
    let mut retry = Duration::from_secs(3);
    let mut connection = 0;
    loop {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if !last_event_id.is_empty() {
            request = request.header("last-event-id", &last_event_id);
        }
        match request.send().await {
            Ok(response) if response.status() == reqwest::StatusCode::NO_CONTENT => {
                return Ok(End::Closed);
            }
            Ok(response) => {
                let event_stream = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                if response.status() != reqwest::StatusCode::OK || !event_stream {
                    return Ok(End::Refused(response.status().as_u16()));
                }
                connection += 1;
                let mut events = MessageStream::new(response.bytes_stream());
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            if !on_event(&event, connection) {
                                return Ok(End::Stopped);
                            }
                        }
                        // The connection broke: reconnect from what was read.
                        Err(_) => break,
                    }
                }
                if !events.last_event_id().is_empty() {
                    last_event_id = events.last_event_id().to_owned();
                }
                if let Some(asked) = events.retry() {
                    retry = asked;
                }
            }
            // Not reachable: try again later.
            Err(_) => {}
        }
        tokio::time::sleep(retry).await;
    }
}

#[tokio::main(flavor = "current_thread")]
#[allow(dead_code)] // `main` is unused where a test includes this file for `follow`.
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/events".to_owned());
    let end = follow(&url, |event, connection| {
        println!(
            "[{connection}] {}: {} (id {})",
            event.event, event.data, event.last_event_id
        );
        true
    })
    .await;
    match end {
        Ok(End::Closed) => println!("the server closed the session"),
        Ok(other) => println!("stopped: {other:?}"),
        Err(e) => eprintln!("client: {e}"),
    }
}
