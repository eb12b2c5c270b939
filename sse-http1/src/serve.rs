//! Accepting connections: [`serve`], until a graceful shutdown.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};

use crate::config::{Reply, ServeConfig};
use crate::connection::connection;
use crate::drain::Drain;
use crate::runtime::Runtime;
use crate::timer::Deadline;

/// How long the accept loop waits after a failed accept (out of file descriptors and the
/// like) before it tries again, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A listening socket, as [`serve`] uses it. The runtime crates implement it for their
/// listeners.
pub trait Listener: Send + 'static {
    /// An accepted connection, as a `futures-io` transport.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Accepts the next connection. Dropping the future before it completes must lose no
    /// connection (it is raced against the shutdown signal).
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send + '_;
}

/// Accepts connections from `listener`, serving each on its own task ([`Runtime::spawn`])
/// with [`serve_connection`](crate::serve_connection), a clone of `config` (so its caps are
/// server-wide) and a clone of `handler`, until `stop` completes; then a graceful shutdown:
///
/// 1. the listener is dropped, so new connections are refused;
/// 2. idle keep-alive connections are closed, and busy ones after their current response
///    (which says `Connection: close`);
/// 3. event streams run on until they end: the hub's shutdown (which
///    [`Server::shutdown`](crate::Server::shutdown) calls before `stop` completes) ends
///    every stream after what is queued, cuts the slow ones within its grace (1 s by
///    default), and answers new event-stream requests with a go-away response;
/// 4. returns once every connection has closed, or once
///    [`ServeConfig::shutdown_timeout`] has passed (5 s by default) after `stop`, when
///    the connections still open are dropped.
///
/// The runtime crates call it as `server.serve(listener, config, handler)`, with the
/// server's [`stopping`](crate::Server::stopping) as `stop`.
pub async fn serve<R, L, H, F, G>(
    mut listener: L,
    config: ServeConfig,
    handler: H,
    stop: G,
) -> io::Result<()>
where
    R: Runtime,
    L: Listener,
    H: FnMut(http::Request<Bytes>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send,
    G: Future<Output = ()>,
{
    let drain = Drain::new();
    // Shared, not cloned into each connection's task: the task then holds a pointer, not
    // the whole config, for as long as its stream lives.
    let config = std::sync::Arc::new(config);
    let mut signal = pin!(stop);
    let mut backoff = Deadline::<R>::new();
    loop {
        let accepted = {
            let mut accept = pin!(listener.accept());
            poll_fn(|cx| match signal.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => accept.as_mut().poll(cx).map(Some),
            })
            .await
        };
        match accepted {
            None => break,
            Some(Ok(mut io)) => {
                let mut member = drain.member();
                let signal = member.signal();
                let config = config.clone();
                let handler = handler.clone();
                R::spawn(async move {
                    let mut conn = pin!(connection::<R, _, _, _>(
                        &mut io,
                        &config,
                        handler,
                        Some(&signal)
                    ));
                    poll_fn(|cx| match member.poll_forced(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => conn.as_mut().poll(cx).map(|_| ()),
                    })
                    .await;
                });
            }
            Some(Err(_)) => {
                let until = R::now() + ACCEPT_BACKOFF;
                let stop = poll_fn(|cx| match signal.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(true),
                    Poll::Pending => backoff.poll_at(cx, Some(until)).map(|()| false),
                })
                .await;
                if stop {
                    break;
                }
            }
        }
    }
    drop(listener);
    drain.start();
    let until = R::now() + config.shutdown_timeout;
    let mut bound = Deadline::<R>::new();
    poll_fn(|cx| match drain.poll_empty(cx) {
        Poll::Ready(()) => Poll::Ready(()),
        Poll::Pending => bound.poll_at(cx, Some(until)),
    })
    .await;
    drain.force();
    Ok(())
}
