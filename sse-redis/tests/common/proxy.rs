//! A TCP relay between a node and Redis that a test can cut, silence and heal: a network
//! partition between one node and Redis while the other nodes still reach it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow.
    Open,
    /// Bytes are held, in both directions, and new connections hang: what a node sees when
    /// packets are dropped (nothing is refused, nothing answers). Healing lets the held bytes
    /// through, as TCP's retransmissions would.
    Silent,
    /// Every connection is reset and new ones are refused.
    Cut,
}

/// The link's state, watched by every relayed connection.
#[derive(Debug, Clone, Copy)]
struct State {
    link: Link,
    /// Bumped by every cut: connections made before it end.
    cuts: u64,
    /// Bumped by [`Proxy::abandon`]: connections made before it hang for good.
    abandoned: u64,
}

/// A relay from a loopback port of its own to `127.0.0.1:<target>`.
pub struct Proxy {
    /// The port to connect to instead of Redis's.
    pub port: u16,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts relaying to `target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (state, watch) = watch::channel(State {
            link: Link::Open,
            cuts: 0,
            abandoned: 0,
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let watch = watch.clone();
                tokio::spawn(relay(client, target, watch));
            }
        });
        Proxy { port, state, task }
    }

    /// The URL to give the node.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sets what the link does from now on.
    pub fn set(&self, link: Link) {
        self.state.send_modify(|s| {
            if link == Link::Cut {
                s.cuts += 1;
            }
            s.link = link;
        });
    }

    /// The connections open now stay silent for good, never closed: what a node holds after
    /// a partition long enough for the far end to forget them (its close lost). Only
    /// connections made afterwards follow the link.
    pub fn abandon(&self) {
        self.state.send_modify(|s| s.abandoned += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One relayed connection, until either side closes it or the link is cut.
async fn relay(client: TcpStream, target: u16, mut state: watch::Receiver<State>) {
    // A new connection over a cut link is refused; over a silent one it waits.
    let Ok(now) = state.wait_for(|s| s.link != Link::Silent).await.map(|s| *s) else {
        return;
    };
    if now.link == Link::Cut {
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, state.clone(), now);
    let down = pump(server_read, client_write, state, now);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies `from` to `to` while the link is open, holding what it read while it is silent;
/// ends when either side closes or the link is cut, and hangs for good once abandoned.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut state: watch::Receiver<State>,
    born: State,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = state.wait_for(|s| s.cuts != born.cuts) => return,
        };
        let Ok(now) = state
            .wait_for(|s| s.link == Link::Open || s.cuts != born.cuts)
            .await
            .map(|s| *s)
        else {
            return;
        };
        if now.cuts != born.cuts {
            return;
        }
        if now.abandoned != born.abandoned {
            // Held, with both sockets open, until the test ends.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
