//! [`EventStream`]: an open event stream read on demand through the core's decoder.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use sse_proto::{Decoder, Item, MessageEvent};

use crate::http::{Chunk, Conn, Head, next_chunk};
use crate::{PATIENCE, Result};

/// An open event stream: the response head and a body read on demand.
#[derive(Debug)]
pub struct EventStream {
    /// The response head.
    pub head: Head,
    pub(crate) conn: Conn,
    pub(crate) chunked: bool,
    pub(crate) chunk_left: usize,
    pub(crate) ended: bool,
    /// Every body byte received so far (de-chunked), comments included.
    pub raw: Vec<u8>,
    pub(crate) decoder: Decoder,
    pub(crate) items: Vec<Item>,
}

impl EventStream {
    /// Reads whatever arrives within `limit` (at least one read unless the stream ended).
    /// Returns false once the stream has ended (terminating chunk or EOF).
    fn pump(&mut self, limit: Duration) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        // Bytes that came in with the head (or with the last read) go first.
        if !self.take_buffered()? {
            self.conn
                .sock
                .set_read_timeout(Some(limit.max(Duration::from_millis(1))))?;
            match self.conn.fill() {
                Ok(0) => self.ended = true,
                Ok(_) => {}
                Err(e) if is_timeout(e.as_ref()) => return Ok(true),
                Err(e) => return Err(e),
            }
            self.take_buffered()?;
        }
        Ok(!self.ended)
    }

    /// Moves what the connection buffered into `raw` and the decoder; whether anything moved.
    fn take_buffered(&mut self) -> Result<bool> {
        let before = self.raw.len();
        if self.chunked {
            loop {
                match next_chunk(&mut self.conn.buf, &mut self.chunk_left, &mut self.raw)? {
                    Chunk::Data => {}
                    Chunk::End => {
                        self.ended = true;
                        break;
                    }
                    Chunk::NeedMore => break,
                }
            }
        } else {
            self.raw.append(&mut self.conn.buf);
        }
        self.decoder.feed(&self.raw[before..])?;
        while let Some(item) = self.decoder.poll_item() {
            self.items.push(item);
        }
        Ok(self.raw.len() > before || self.ended)
    }

    /// Waits up to [`PATIENCE`] for `done` to hold on the stream. Returns whether it did.
    pub fn wait_for(&mut self, mut done: impl FnMut(&EventStream) -> bool) -> Result<bool> {
        self.wait_for_within(PATIENCE, &mut done)
    }

    /// Waits up to `limit` for `done` to hold on the stream.
    pub fn wait_for_within(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&EventStream) -> bool,
    ) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline || !self.pump(deadline - now)? {
                return Ok(done(self));
            }
        }
    }

    /// The session id the preamble set (the decoder's last event id), once it arrived.
    pub fn session_id(&mut self) -> Result<String> {
        self.wait_for(|s| !s.decoder.last_event_id().is_empty())?;
        match self.decoder.last_event_id() {
            "" => Err("no `id:` in the preamble".into()),
            id => Ok(id.to_owned()),
        }
    }

    /// The last event id so far, as `EventSource` keeps it (an `id:` field takes effect at
    /// the blank line that ends its block, the preamble's included): what a browser would
    /// send back as `Last-Event-ID` if the stream ended now. Empty before any `id:` arrived.
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The events dispatched so far.
    pub fn events(&self) -> Vec<&MessageEvent> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e),
                Item::Retry(_) => None,
            })
            .collect()
    }

    /// Retry values received so far.
    pub fn retries(&self) -> Vec<u64> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Retry(ms) => Some(*ms),
                Item::Event(_) => None,
            })
            .collect()
    }

    /// Waits for the first event named `name` and returns it.
    pub fn next_named(&mut self, name: &str) -> Result<MessageEvent> {
        self.wait_for(|s| s.events().iter().any(|e| e.event == name))?;
        self.events()
            .into_iter()
            .find(|e| e.event == name)
            .cloned()
            .ok_or_else(|| format!("no `{name}` event within {PATIENCE:?}").into())
    }

    /// Waits up to `limit` for the server to end the stream. Returns whether it did.
    pub fn wait_end(&mut self, limit: Duration) -> Result<bool> {
        self.wait_for_within(limit, |s| s.ended)
    }

    /// Whether the server ended the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Hangs up (both directions), as a closed tab does.
    pub fn hang_up(self) {
        let _ = self.conn.sock.shutdown(Shutdown::Both);
    }

    /// The socket, for tests that need to stop reading (a slow client).
    pub fn socket(&self) -> &TcpStream {
        &self.conn.sock
    }
}

fn is_timeout(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    })
}
