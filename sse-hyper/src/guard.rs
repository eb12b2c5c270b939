//! Cutting a connection off when its event stream is cut off.
//!
//! hyper polls a response body only when its write buffer has room. A client that stops
//! reading fills the socket, hyper stops polling the [`EventStream`](crate::EventStream), and
//! nothing in the body can end the connection. The hub still bounds the memory (the session
//! is ended as too slow, its queue dropped, and it leaves the hub at once), but the socket
//! would stay open until the kernel gives up on it.
//!
//! A [`Watch`] closes that gap: wrap each accepted socket with [`Watch::guard`] and put the
//! watch into each request's extensions ([`Server::serve`](crate::Server::serve) does both);
//! [`Server::handshake`](crate::Server::handshake) registers the
//! streams it accepts with it, and once one of them is cut off, the guarded socket's waiting
//! read or write fails (hyper is woken for it at once). hyper then drops the connection.
//!
//! # HTTP/2
//!
//! Over HTTP/2 one connection carries many streams (every tab of a browser), and one of them
//! can stall on its own: the client stops granting it flow-control window (a frozen
//! background tab) while it goes on reading the connection and the other streams. That
//! stream is cut off like any slow reader (its session ends, its queue is dropped, memory
//! stays bounded), and only it: the other streams on the connection keep flowing. When hyper
//! next polls its body (the client grants window again), the body ends, so the tab's
//! `EventSource` reconnects; until then hyper keeps what it had buffered for the stream.
//!
//! An HTTP/2 connection is dropped for a stream cut off as too slow only when the connection
//! itself stopped taking bytes (the whole client stopped reading): the stream was cut while
//! a write to the guarded socket was waiting, and that write has waited for a second. A
//! stream cut while writes go through is forgotten, and a write that waits only a moment (a
//! burst) drops nothing. A stream cut at shutdown (past the hub's shutdown grace) drops the
//! connection at once, whatever its version.
//!
//! # HTTP/1.x
//!
//! The watch also keeps a peer that went away from lingering. While an HTTP/1.x response
//! streams, hyper reads only to notice the end of the connection, and once a read has
//! returned bytes (a client that sent anything after its request) it stops reading until
//! the response is over: a FIN or reset that follows would go unnoticed until a write
//! fails. So while a stream registered with [`Watch::register_http1`] is open, the guarded
//! socket reads on hyper's behalf, discards what the client sends (at most
//! [`MAX_STRAY_BYTES`]) and passes the end of the connection or an error through at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sse_proto::{Cutoff, EndReason};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Most bytes a client may send on an HTTP/1.x connection after the request of an event
/// stream that is still open: they are discarded, and past this the connection is dropped.
pub const MAX_STRAY_BYTES: usize = 64 * 1024;

/// Most stray bytes discarded in one read call, so a flooding client cannot hold the task.
const STRAY_PER_POLL: usize = 16 * 1024;

/// How long a write must have waited before an HTTP/2 stream cut off as too slow drops its
/// connection: a burst that fills the socket for a moment is not a client that stopped
/// reading.
const STALL: Duration = Duration::from_secs(1);

/// The event streams served on one connection. Cheap to clone: every clone is the same watch.
///
/// An HTTP/1.x stream cut off drops its connection at once. An HTTP/2 stream cut off as too
/// slow drops its connection only when the connection itself stopped taking bytes (a write
/// has waited for a second since before the cut); a stream stalled by its own flow-control
/// window just ends, and the other streams on the connection go on.
///
/// A waiting read or write costs the same whatever the number of streams: each stream's
/// cut-off raises one flag of the watch, and the streams are looked at only once it is
/// raised.
///
/// ```no_run
/// # async fn demo(listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// let (tcp, _) = listener.accept().await?;
/// let watch = sse_hyper::Watch::new();
/// let io = watch.guard(tcp); // give `io` to hyper (through hyper-util's `TokioIo`)
/// // and in the service, before the handshake:
/// // req.extensions_mut().insert(watch.clone());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Watch {
    shared: Arc<Shared>,
}

/// What the clones of a [`Watch`] share.
#[derive(Debug)]
struct Shared {
    streams: Mutex<Vec<Watched>>,
    /// Raised by any stream's cut-off.
    flag: Arc<Flag>,
    /// Wakes `flag`: the one waker every stream's cut-off holds.
    waker: Waker,
}

impl Default for Shared {
    fn default() -> Shared {
        let flag = Arc::new(Flag::default());
        Shared {
            streams: Mutex::default(),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

/// Raised when a watched stream may have been cut off, or is over; wakes the connection's
/// task. It also holds what every read and write of the guarded transport asks, so that
/// they touch this alone (with many connections it is rarely in the cache).
#[derive(Debug, Default)]
struct Flag {
    raised: AtomicBool,
    /// The last look kept a stream that was cut off (its verdict stands until the
    /// connection is dropped or the stall ends): look again each time.
    held: AtomicBool,
    /// How many of the streams are HTTP/1.x streams: a read asks without the lock.
    exclusive: AtomicUsize,
    /// Counts the raises and the streams registered: what a look at the streams found
    /// holds as long as it is unchanged.
    generation: AtomicU64,
    /// The connection's task, as of its last read or write that had to wait.
    task: Mutex<Option<Waker>>,
}

impl Flag {
    /// Whether the streams need a look: the flag was raised, or the last look kept a
    /// verdict. Registers `cx` first, so that a cut-off in between wakes its task.
    fn needs_look(&self, cx: &Context<'_>) -> bool {
        self.wake_on(cx.waker());
        let raised = self.raised.swap(false, Ordering::AcqRel);
        raised || self.held.load(Ordering::Acquire)
    }

    /// Remembers `waker` as the task to wake.
    fn wake_on(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.raised.store(true, Ordering::Release);
        // Woken outside the lock: the task may run at once on another thread.
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// One stream of a [`Watch`].
#[derive(Debug, Clone)]
struct Watched {
    cutoff: Cutoff,
    /// An HTTP/1.x stream: it holds the connection until it ends.
    exclusive: bool,
}

/// What the watched streams say about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Nothing to do.
    Keep,
    /// A shared stream was cut off as too slow while a write waited: drop the connection
    /// if the write goes on waiting.
    Stalled,
    /// Drop the connection now.
    Drop(EndReason),
}

impl Watch {
    /// A watch with no streams yet.
    pub fn new() -> Watch {
        Watch::default()
    }

    /// Wraps a connection's transport so that it fails once a watched stream is cut off.
    pub fn guard<T>(&self, io: T) -> Guarded<T> {
        Guarded {
            io,
            watch: self.clone(),
            flag: self.shared.flag.clone(),
            http1: None,
            stray: 0,
            stall: None,
        }
    }

    /// Watches one stream that shares its connection with others (HTTP/2): cut off as too
    /// slow, it drops the connection only if the connection itself stops taking bytes (see
    /// the module docs). The handshake calls this for HTTP/2 requests that carry the watch.
    pub fn register(&self, stream: Cutoff) {
        self.push(stream, false);
    }

    /// Watches one HTTP/1.x stream, which holds its connection until it ends: cut off, it
    /// drops the connection at once; while it is open, what the client sends is discarded
    /// and its FIN or reset ends the connection at once (see the module docs). The
    /// handshake calls this for HTTP/1.x requests.
    pub fn register_http1(&self, stream: Cutoff) {
        self.push(stream, true);
    }

    fn push(&self, cutoff: Cutoff, exclusive: bool) {
        let shared = &*self.shared;
        // From now on its cut-off raises the flag; one that already happened raises it now
        // (a cut-off that is ready keeps no waker).
        if cutoff
            .poll(&mut Context::from_waker(&shared.waker))
            .is_ready()
        {
            shared.waker.wake_by_ref();
        }
        let mut streams = shared.lock();
        // Streams that ended normally need no watching; this keeps the list to the streams
        // still open on a keep-alive connection.
        streams.retain(|s| !s.cutoff.is_done());
        streams.push(Watched { cutoff, exclusive });
        shared.count_exclusive(&streams);
        shared.flag.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether an event stream registered with this watch is still open on the connection.
    ///
    /// A server that closes idle connections (hyper has no idle timeout for HTTP/2) asks
    /// this: a connection whose only requests are long-lived event streams is not idle.
    ///
    /// ```
    /// let watch = sse_hyper::Watch::new();
    /// assert!(!watch.is_streaming());
    /// ```
    pub fn is_streaming(&self) -> bool {
        let streams = self.shared.lock();
        streams.iter().any(|s| !s.cutoff.is_done())
    }

    /// Whether an HTTP/1.x stream is open on the connection (the guarded transport asks
    /// the flag's count of them first).
    fn is_streaming_http1(&self) -> bool {
        let streams = self.shared.lock();
        streams.iter().any(|s| s.exclusive && !s.cutoff.is_done())
    }

    /// Looks at the streams, once [`Flag::needs_look`] says one may have been cut off
    /// since the last look, registering the flag to be raised when one is.
    ///
    /// An exclusive stream cut off, or any stream cut off for another reason than being too
    /// slow (a shutdown past its grace), drops the connection. A shared stream cut off as
    /// too slow counts only when `stalled` (a write has been waiting since before this
    /// look); otherwise it was cut while the connection took bytes, by its own flow-control
    /// window, and it is forgotten.
    fn look(&self, stalled: bool) -> Verdict {
        let shared = &*self.shared;
        let mut streams = shared.lock();
        let mut verdict = Verdict::Keep;
        let mut held = false;
        let mut flag_cx = Context::from_waker(&shared.waker);
        streams.retain(|stream| match stream.cutoff.poll(&mut flag_cx) {
            Poll::Pending => true,
            Poll::Ready(reason) if stream.exclusive || reason != EndReason::TooSlow => {
                verdict = Verdict::Drop(reason);
                held = true;
                true
            }
            Poll::Ready(_) if stalled => {
                if verdict == Verdict::Keep {
                    verdict = Verdict::Stalled;
                }
                held = true;
                true
            }
            Poll::Ready(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(
                    target: "sse",
                    "HTTP/2 stream cut off while its connection took bytes: connection kept"
                );
                false
            }
        });
        shared.flag.held.store(held, Ordering::Release);
        shared.count_exclusive(&streams);
        verdict
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_exclusive(&self, streams: &[Watched]) {
        let n = streams.iter().filter(|s| s.exclusive).count();
        self.flag.exclusive.store(n, Ordering::Release);
    }
}

/// The error that makes hyper drop the connection.
fn cut_off(reason: EndReason) -> io::Error {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "sse", ?reason, "connection dropped: its stream was cut off");
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("event stream cut off: {reason:?}"),
    )
}

/// A write that waits for the transport.
#[derive(Debug)]
struct Stall {
    /// Since when (the first write that returned `Pending`).
    since: Instant,
    /// Wakes the task when the stall has lasted [`STALL`], once a shared stream was cut off
    /// during it.
    timer: Option<Pin<Box<Sleep>>>,
}

/// A transport that fails once a stream of its [`Watch`] is cut off.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    watch: Watch,
    /// The watch's flag, held here so that a read or write that finds nothing to do
    /// touches it alone.
    flag: Arc<Flag>,
    /// Whether an HTTP/1.x stream was open, as of the watch's generation then: asked on
    /// every read, looked up again only once a stream was registered, cut off or over.
    http1: Option<(u64, bool)>,
    /// Bytes discarded while an HTTP/1.x stream was open.
    stray: usize,
    /// Set while a write waits (the last write or flush returned `Pending`).
    stall: Option<Stall>,
}

impl<T> Guarded<T> {
    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The watch this transport answers to.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// What the streams say, looked at only when the flag asks for it (see
    /// [`Watch::look`]); registers `cx` to be woken when a stream is cut off.
    fn poll_streams(&self, cx: &Context<'_>, stalled: bool) -> Verdict {
        if self.flag.needs_look(cx) {
            self.watch.look(stalled)
        } else {
            Verdict::Keep
        }
    }

    /// Whether an HTTP/1.x stream is open on the connection. The answer is kept until the
    /// watch's generation moves (a stream registered, or one cut off or over: each wakes
    /// the flag), so that a read does not lock every stream's session while a fan-out
    /// holds it.
    fn is_streaming_http1(&mut self) -> bool {
        if self.flag.exclusive.load(Ordering::Acquire) == 0 {
            return false;
        }
        // Read before looking: a change during the look moves it past what is kept.
        let generation = self.flag.generation.load(Ordering::Acquire);
        if let Some((_, open)) = self.http1.filter(|&(seen, _)| seen == generation) {
            return open;
        }
        let open = self.watch.is_streaming_http1();
        self.http1 = Some((generation, open));
        open
    }

    /// Passes a read's result through, unless the read has to wait and a stream was cut off
    /// in a way that drops the connection. Only a waiting read looks at the streams, so a
    /// transport that keeps up costs nothing more.
    fn check_read(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        if poll.is_ready() {
            return poll;
        }
        match self.poll_streams(cx, self.stall.is_some()) {
            Verdict::Drop(reason) => Poll::Ready(Err(cut_off(reason))),
            // A stall is the write side's to judge.
            Verdict::Keep | Verdict::Stalled => Poll::Pending,
        }
    }

    /// Passes a write's (or flush's) result through, unless the write has to wait and a
    /// stream was cut off in a way that drops the connection: at once for an exclusive
    /// stream, once the write has waited [`STALL`] for a shared one cut off during the wait.
    fn check_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stall = None;
            return poll;
        }
        // The first write to wait starts a stall: the streams cut off before it were cut
        // while the connection took bytes.
        let stalled = self.stall.is_some();
        let verdict = self.poll_streams(cx, stalled);
        let stall = self.stall.get_or_insert_with(|| Stall {
            since: Instant::now(),
            timer: None,
        });
        match verdict {
            Verdict::Keep => Poll::Pending,
            Verdict::Drop(reason) => Poll::Ready(Err(cut_off(reason))),
            Verdict::Stalled => {
                let at = stall.since + STALL;
                let timer = stall
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(cut_off(EndReason::TooSlow))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = if self.is_streaming_http1() {
            self.discard(cx)
        } else {
            Pin::new(&mut self.io).poll_read(cx, buf)
        };
        self.check_read(cx, poll)
    }
}

impl<T: AsyncRead + Unpin> Guarded<T> {
    /// Reads until the socket has nothing more, discarding what arrives; `Ready` (with
    /// nothing read: the end, for hyper) at EOF or past [`MAX_STRAY_BYTES`], or with the
    /// socket's error. Reading until `Pending` keeps the task registered for the next bytes,
    /// a FIN or a reset.
    fn discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 512];
        let mut this_poll = 0;
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    self.stray += n;
                    this_poll += n;
                    if self.stray > MAX_STRAY_BYTES {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "too many bytes after the request of an event stream",
                        )));
                    }
                    if this_poll >= STRAY_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.check_write(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::{EventStream, Hub, Outcome, Server, Session};

    /// A transport that reads what was put in `incoming` (and waits when there is nothing)
    /// and whose writes go through while `writable`.
    #[derive(Debug, Default)]
    struct Fake {
        writable: AtomicBool,
        incoming: std::sync::Mutex<Vec<u8>>,
    }

    impl AsyncRead for Fake {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let mut incoming = self.incoming.lock().unwrap();
            if incoming.is_empty() {
                return Poll::Pending;
            }
            let n = incoming.len().min(buf.remaining());
            buf.put_slice(&incoming[..n]);
            incoming.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Fake {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.writable.load(Ordering::Relaxed) {
                Poll::Ready(Ok(buf.len()))
            } else {
                Poll::Pending
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn server() -> Server {
        Server::new(Hub::builder().keep_alive(None).budget(1024))
    }

    /// Accepts a stream over `version` on the connection `io` guards; keep the body: dropping
    /// it ends the stream.
    async fn accept(
        server: &Server,
        io: &Guarded<Fake>,
        version: http::Version,
    ) -> (Session, EventStream) {
        let req = http::Request::get("/events")
            .version(version)
            .header("accept", "text/event-stream")
            .extension(io.watch().clone())
            .body(())
            .unwrap();
        match server.handshake(&req).await {
            Outcome::Accept(accepted) => (accepted.session, accepted.response.into_body()),
            other => panic!("{other:?}"),
        }
    }

    /// Cuts `session` off as too slow: nothing drains its queue.
    fn overflow(session: &Session) {
        for _ in 0..4 {
            let _ = session.send("x".repeat(512));
        }
        assert_eq!(session.end_reason(), Some(EndReason::TooSlow));
    }

    fn read(io: &mut Guarded<Fake>) -> Poll<io::Result<()>> {
        let mut buf = [0u8; 16];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(io).poll_read(&mut cx, &mut ReadBuf::new(&mut buf))
    }

    fn write(io: &mut Guarded<Fake>, writable: bool) -> Poll<io::Result<usize>> {
        io.get_ref().writable.store(writable, Ordering::Relaxed);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(io).poll_write(&mut cx, b"frame")
    }

    fn is_cut_off<T>(poll: Poll<io::Result<T>>) -> bool {
        matches!(poll, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted)
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_stream_cut_off_drops_the_connection_at_once() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (session, _body) = accept(&server, &io, http::Version::HTTP_11).await;
        assert!(read(&mut io).is_pending());
        overflow(&session);
        assert!(is_cut_off(read(&mut io)));
        assert!(is_cut_off(write(&mut io, false)));
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_off_wakes_the_waiting_connection_and_only_then_are_the_streams_looked_at() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (_other, _other_body) = accept(&server, &io, http::Version::HTTP_2).await;
        let woken = Arc::new(Count::default());
        let waker = Waker::from(woken.clone());
        let mut buf = [0u8; 16];
        let mut read = |io: &mut Guarded<Fake>| {
            let mut cx = Context::from_waker(&waker);
            Pin::new(io).poll_read(&mut cx, &mut ReadBuf::new(&mut buf))
        };
        assert!(read(&mut io).is_pending());
        // Registered while the connection waits, as an HTTP/2 stream's handler does on a
        // task of its own: its cut-off still wakes the connection.
        let (session, _body) = accept(&server, &io, http::Version::HTTP_2).await;
        assert!(read(&mut io).is_pending());
        assert_eq!(woken.0.load(Ordering::Relaxed), 0);
        assert!(!io.watch().shared.flag.raised.load(Ordering::Relaxed));
        overflow(&session);
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
        assert!(io.watch().shared.flag.raised.load(Ordering::Relaxed));
        // Looked at: cut by its own window while the connection took bytes, forgotten.
        assert!(read(&mut io).is_pending());
        assert!(!io.watch().shared.flag.raised.load(Ordering::Relaxed));
        assert_eq!(io.watch().shared.lock().len(), 1, "forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_request_is_read_once_an_http1_stream_is_over() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (_session, body) = accept(&server, &io, http::Version::HTTP_11).await;
        io.get_ref().incoming.lock().unwrap().extend(b"stray");
        let mut buf = [0u8; 16];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read_buf = ReadBuf::new(&mut buf);
        assert!(
            Pin::new(&mut io)
                .poll_read(&mut cx, &mut read_buf)
                .is_pending()
        );
        assert!(
            read_buf.filled().is_empty(),
            "discarded while the stream is open"
        );
        // hyper drops the body of a stream that is over, and reads the next request.
        drop(body);
        io.get_ref().incoming.lock().unwrap().extend(b"GET /next");
        let poll = Pin::new(&mut io).poll_read(&mut cx, &mut read_buf);
        assert!(matches!(poll, Poll::Ready(Ok(()))));
        assert_eq!(read_buf.filled(), b"GET /next");
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2_stream_cut_off_while_writes_go_through_is_forgotten() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (slow, _slow_body) = accept(&server, &io, http::Version::HTTP_2).await;
        let (_other, _other_body) = accept(&server, &io, http::Version::HTTP_2).await;
        assert!(matches!(write(&mut io, true), Poll::Ready(Ok(5))));
        // Its own window held it: the connection reads and writes on.
        overflow(&slow);
        assert!(read(&mut io).is_pending());
        assert!(matches!(write(&mut io, true), Poll::Ready(Ok(5))));
        // A later stall, however long, is not the cut stream's.
        assert!(write(&mut io, false).is_pending());
        tokio::time::advance(3 * STALL).await;
        assert!(write(&mut io, false).is_pending());
        assert!(read(&mut io).is_pending());
        assert_eq!(io.watch().shared.lock().len(), 1, "forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2_stream_cut_off_during_a_stall_drops_the_connection_after_a_second() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (slow, _body) = accept(&server, &io, http::Version::HTTP_2).await;
        assert!(write(&mut io, false).is_pending());
        tokio::time::advance(STALL / 2).await;
        overflow(&slow);
        // The read side leaves it to the write side.
        assert!(read(&mut io).is_pending());
        assert!(write(&mut io, false).is_pending());
        // A second from the start of the stall, not from the cut.
        tokio::time::advance(STALL / 2 - Duration::from_millis(1)).await;
        assert!(write(&mut io, false).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(is_cut_off(write(&mut io, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_that_ends_within_a_second_drops_nothing() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (slow, _body) = accept(&server, &io, http::Version::HTTP_2).await;
        assert!(write(&mut io, false).is_pending());
        overflow(&slow);
        assert!(write(&mut io, false).is_pending());
        tokio::time::advance(STALL / 2).await;
        // The client read: the write went through, and the stall is over.
        assert!(matches!(write(&mut io, true), Poll::Ready(Ok(5))));
        assert!(write(&mut io, false).is_pending());
        tokio::time::advance(3 * STALL).await;
        assert!(write(&mut io, false).is_pending());
    }

    #[tokio::test(start_paused = true)]
    async fn an_h2_stream_cut_off_at_shutdown_drops_the_connection_at_once() {
        let server = server();
        let mut io = Watch::new().guard(Fake::default());
        let (session, _body) = accept(&server, &io, http::Version::HTTP_2).await;
        // Something queued and never written: the stream is cut at the shutdown deadline.
        session.send("last").unwrap();
        server.shutdown();
        assert!(read(&mut io).is_pending());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(session.end_reason(), Some(EndReason::Shutdown));
        assert!(is_cut_off(read(&mut io)));
    }
}
