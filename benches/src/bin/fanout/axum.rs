//! The axum comparison server: the demo contract's `/events` and `/broadcast` with axum's
//! own `Sse` and a `tokio::sync::broadcast` channel, the way an axum application fans out,
//! each connection encoding every event itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// The axum comparison server: `/events` is axum's `Sse` over a broadcast receiver, each
/// connection encoding every event; `/broadcast` sends the body and answers the count.
pub(crate) fn serve(addr: SocketAddr) {
    use axum::Router;
    use axum::extract::{Query, State};
    use axum::response::sse::{Event, Sse};
    use axum::routing::{get, post};
    use futures_lite::Stream;
    use tokio::sync::broadcast;

    type Tx = broadcast::Sender<(Option<String>, Arc<str>)>;

    async fn events(State(tx): State<Tx>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let rx = tx.subscribe();
        let stream = futures_lite::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok((name, data)) => {
                        let mut event = Event::default().data(&*data);
                        if let Some(name) = name {
                            event = event.event(name);
                        }
                        return Some((Ok(event), rx));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Sse::new(stream)
    }

    async fn send(
        State(tx): State<Tx>,
        Query(q): Query<std::collections::HashMap<String, String>>,
        body: String,
    ) -> String {
        let n = tx
            .send((q.get("event").cloned(), Arc::from(body)))
            .unwrap_or(0);
        n.to_string()
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        eprintln!("fanout: no runtime");
        return;
    };
    rt.block_on(async move {
        let (tx, _) = broadcast::channel::<(Option<String>, Arc<str>)>(4096);
        let app = Router::new()
            .route("/events", get(events))
            .route("/broadcast", post(send))
            .with_state(tx);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fanout: bind {addr}: {e}");
                return;
            }
        };
        if let Ok(local) = listener.local_addr() {
            println!("listening on http://{local}");
        }
        // TCP_NODELAY as the sse-rs servers set it: an event goes out when it is written.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
}
