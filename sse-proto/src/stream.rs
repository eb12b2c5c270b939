//! `Stream`s (feature `stream`): events out of any byte stream, for a Rust client, and a
//! stream of events into a session.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use futures_core::Stream;

use crate::decode::{Decoder, Item, Limits, MessageEvent};
use crate::error::DecodeError;

/// The events of an event stream, read from any stream of byte chunks (a `reqwest`
/// response's `bytes_stream()`, a hyper body, a socket).
///
/// It yields each dispatched [`MessageEvent`]; the stream's `retry:` and last event id are
/// kept for the reconnect ([`retry`](Self::retry), [`last_event_id`](Self::last_event_id)).
/// It ends when the bytes end (after an event left without its blank line is dropped, as
/// browsers do) and after an error.
///
/// ```
/// # fn main() {
/// use bytes::Bytes;
/// use sse_proto::MessageStream;
///
/// let chunks = vec![
///     Ok::<_, std::io::Error>(Bytes::from("id: tab~1.5\nevent: note\nda")),
///     Ok(Bytes::from("ta: hi\n\nretry: 2000\n\n")),
/// ];
/// let mut events = MessageStream::new(futures_lite::stream::iter(chunks));
/// futures_lite::future::block_on(async {
///     use futures_lite::StreamExt;
///     let first = events.next().await.unwrap().unwrap();
///     assert_eq!((first.event.as_str(), first.data.as_str()), ("note", "hi"));
///     assert!(events.next().await.is_none());
///     assert_eq!(events.last_event_id(), "tab~1.5");
///     assert_eq!(events.retry(), Some(std::time::Duration::from_millis(2000)));
/// });
/// # }
/// ```
pub struct MessageStream<S> {
    bytes: Option<S>,
    decoder: Decoder,
    retry: Option<u64>,
}

/// Why a [`MessageStream`] stopped early.
#[derive(Debug)]
pub enum ReadError<E> {
    /// The byte stream failed.
    Transport(E),
    /// The bytes broke the decoder's limits.
    Decode(DecodeError),
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Transport(e) => write!(f, "reading the event stream failed: {e}"),
            ReadError::Decode(e) => write!(f, "bad event stream: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Transport(e) => Some(e),
            ReadError::Decode(e) => Some(e),
        }
    }
}

impl<S> MessageStream<S> {
    /// Events from `bytes`, with the default decoder limits.
    pub fn new(bytes: S) -> MessageStream<S> {
        MessageStream::with_limits(bytes, Limits::default())
    }

    /// Events from `bytes`, with the decoder `limits`.
    pub fn with_limits(bytes: S, limits: Limits) -> MessageStream<S> {
        MessageStream {
            bytes: Some(bytes),
            decoder: Decoder::with_limits(limits),
            retry: None,
        }
    }

    /// The last event id the stream set: what to send back as `Last-Event-ID` when
    /// reconnecting.
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The reconnection delay the stream asked for, if it did.
    pub fn retry(&self) -> Option<std::time::Duration> {
        self.retry.map(std::time::Duration::from_millis)
    }
}

impl<S, B, E> Stream for MessageStream<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
{
    type Item = Result<MessageEvent, ReadError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            while let Some(item) = this.decoder.poll_item() {
                match item {
                    Item::Event(event) => return Poll::Ready(Some(Ok(event))),
                    Item::Retry(ms) => this.retry = Some(ms),
                }
            }
            let Some(bytes) = &mut this.bytes else {
                return Poll::Ready(None);
            };
            match Pin::new(bytes).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(mut chunk))) => {
                    while chunk.has_remaining() {
                        let part = chunk.chunk();
                        let n = part.len();
                        if let Err(e) = this.decoder.feed(part) {
                            this.bytes = None;
                            return Poll::Ready(Some(Err(ReadError::Decode(e))));
                        }
                        chunk.advance(n);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.bytes = None;
                    return Poll::Ready(Some(Err(ReadError::Transport(e))));
                }
                Poll::Ready(None) => {
                    this.bytes = None;
                    this.decoder.finish();
                }
            }
        }
    }
}

impl<S> fmt::Debug for MessageStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("last_event_id", &self.last_event_id())
            .field("retry", &self.retry)
            .field("ended", &self.bytes.is_none())
            .finish()
    }
}
