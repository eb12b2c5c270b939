//! A simulated runtime and network for the driver's tests: tokio's paused clock, which moves
//! only when every task waits and then straight to the next deadline, and in-memory pipes
//! for sockets. A deadline of seconds is checked at once and to the instant, with no wall
//! time and nothing left to the machine's load.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use sse_http1::{Listener, Runtime, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The runtime: tokio's (paused) clock and timer, `tokio::spawn`.
pub struct Sim;

impl Runtime for Sim {
    type Sleep = tokio::time::Sleep;

    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(deadline: Instant) -> Self::Sleep {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))
    }

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task);
    }
}

impl<S> Transport<S> for Sim
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Io<'a>
        = Compat<&'a mut S>
    where
        S: 'a;

    fn bridge(io: &mut S) -> Self::Io<'_> {
        io.compat()
    }
}

/// Bytes a pipe holds in each direction before a writer waits.
const PIPE: usize = 64 * 1024;

/// The network's side that clients connect from.
#[derive(Clone)]
pub struct Net(mpsc::UnboundedSender<DuplexStream>);

/// The listener the driver accepts from.
pub struct SimListener(mpsc::UnboundedReceiver<DuplexStream>);

/// A network with one listener.
pub fn listen() -> (Net, SimListener) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Net(tx), SimListener(rx))
}

impl Net {
    /// A new connection to the listener: the client's end. Dropping it is the client going
    /// away; shutting it down is its FIN.
    pub fn connect(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(PIPE);
        self.0.send(server).unwrap();
        client
    }
}

impl Listener for SimListener {
    type Io = Compat<DuplexStream>;

    async fn accept(&mut self) -> io::Result<Self::Io> {
        match self.0.recv().await {
            Some(server) => Ok(server.compat()),
            // Every `Net` is gone: nothing more will connect.
            None => std::future::pending().await,
        }
    }
}

/// The time of the simulation.
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// What arrives on `client` until it is closed (EOF or an error), or `limit` passes: the
/// bytes, and whether it was closed.
pub async fn read_until_closed(client: &mut DuplexStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.unwrap_or(false);
    (got, closed)
}

/// Reads until `done` holds for what arrived (failing after a minute of simulated time).
pub async fn read_until(
    client: &mut DuplexStream,
    got: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) {
    let mut buf = [0u8; 4096];
    let read = async {
        while !done(got) {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => panic!("closed early: {:?}", String::from_utf8_lossy(got)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("in time");
}

/// Whether `needle` is in `haystack`.
pub fn has(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The status code of the first response in `bytes`.
pub fn status(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
