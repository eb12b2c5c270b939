//! The load client's HTTP/2 over TLS, for `h2:` servers: the streams multiplexed on a few
//! connections as a browser multiplexes its tabs' (C connections of about N / C streams
//! each), and the broadcasts sent as `POST`s over HTTP/2 on a connection of their own.
//!
//! The server gets a certificate made here (`--cert`/`--key`, self-signed for `localhost`
//! with rcgen), and the client trusts that certificate only: the handshake is verified as a
//! browser's would be, against a root it was given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use h2::client::SendRequest;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::load::{Error, Marks, Seen};

/// The name the certificate is made for, and the client asks for.
const NAME: &str = "localhost";

/// The HTTP/2 windows the client grants the server: Chrome's (6 MiB per stream, 15 MiB per
/// connection), so that flow control never holds a delivery back.
const STREAM_WINDOW: u32 = 6 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 15 * 1024 * 1024;

/// A certificate for the server (PEM files in a directory of their own, removed on drop)
/// and a TLS client that trusts it only and offers `h2` through ALPN.
pub(crate) struct Tls {
    dir: PathBuf,
    connector: TlsConnector,
}

impl Tls {
    pub(crate) fn new() -> Result<Tls, Error> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fanout-h2-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let made = rcgen::generate_simple_self_signed(vec![NAME.to_owned()])?;
        std::fs::write(dir.join("cert.pem"), made.cert.pem())?;
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Tls {
            dir,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The server's flags for this certificate (they imply the demo's `--tls`).
    pub(crate) fn flags(&self) -> [String; 4] {
        let path = |name: &str| self.dir.join(name).display().to_string();
        [
            "--cert".to_owned(),
            path("cert.pem"),
            "--key".to_owned(),
            path("key.pem"),
        ]
    }

    pub(crate) fn connector(&self) -> TlsConnector {
        self.connector.clone()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/2 connection to `addr` over TLS, its driver spawned on this runtime.
async fn connect(tls: &TlsConnector, addr: SocketAddr) -> Result<SendRequest<Bytes>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tls.connect(ServerName::try_from(NAME)?, tcp).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not choose h2 through ALPN".into());
    }
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake(tls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Opens an event stream on `send`; its body once the response head is in.
async fn open(send: SendRequest<Bytes>, target: &str) -> Result<h2::RecvStream, Error> {
    let request = http::Request::get(format!("https://{NAME}{target}"))
        .header("accept", "text/event-stream")
        .body(())?;
    let (response, _) = send.ready().await?.send_request(request, true)?;
    let response = response.await?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("/events over h2: {}", response.status()).into());
    }
    Ok(response.into_body())
}

/// Reads an event stream until it has had every broadcast.
async fn read(mut body: h2::RecvStream, broadcasts: usize) -> Result<Seen, Error> {
    let mut marks = Marks::new(broadcasts);
    while !marks.done() {
        let data = body.data().await.ok_or("server closed a stream")??;
        let now = Instant::now();
        let _ = body.flow_control().release_capacity(data.len());
        marks.feed(&data, now)?;
    }
    Ok(marks.into_seen())
}

/// One connection with `streams` event streams on it. The first stream's answer comes after
/// the server's SETTINGS, which say how many streams it takes at once: more than that on the
/// connection is an error (the rest would wait for a stream to end, and none does).
/// `connecting` is released once the first stream is in; `ready` gets a permit per stream.
pub(crate) async fn connection(
    tls: TlsConnector,
    addr: SocketAddr,
    target: Arc<str>,
    streams: usize,
    broadcasts: usize,
    connecting: OwnedSemaphorePermit,
    ready: Arc<Semaphore>,
) -> Result<Vec<Seen>, Error> {
    let send = connect(&tls, addr).await?;
    let first = open(send.clone(), &target).await?;
    let allowed = send.current_max_send_streams();
    if streams > allowed {
        return Err(format!(
            "{streams} streams on one connection, where the server takes {allowed}: \
             raise --h2-conns"
        )
        .into());
    }
    drop(connecting);
    ready.add_permits(1);
    let mut tasks: Vec<JoinHandle<Result<Seen, Error>>> = Vec::with_capacity(streams);
    tasks.push(tokio::spawn(read(first, broadcasts)));
    for _ in 1..streams {
        let (send, target, ready) = (send.clone(), target.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let body = open(send, &target).await?;
            ready.add_permits(1);
            read(body, broadcasts).await
        }));
    }
    let mut seen = Vec::with_capacity(streams);
    for task in tasks {
        seen.push(task.await??);
    }
    Ok(seen)
}

/// `POST`s over one HTTP/2 connection of their own, kept open, as an application's backend
/// would send its broadcasts (made before the measurement, so its handshake is not counted).
pub(crate) struct Poster {
    send: SendRequest<Bytes>,
}

impl Poster {
    pub(crate) async fn connect(tls: &TlsConnector, addr: SocketAddr) -> Result<Poster, Error> {
        Ok(Poster {
            send: connect(tls, addr).await?,
        })
    }

    /// `POST path?event=bulk` with `body`; the count the server answers.
    pub(crate) async fn post(&mut self, path: &str, body: &[u8]) -> Result<usize, Error> {
        let request = http::Request::post(format!("https://{NAME}{path}?event=bulk"))
            .header("content-length", body.len())
            .body(())?;
        let (response, mut out) = self
            .send
            .clone()
            .ready()
            .await?
            .send_request(request, false)?;
        out.send_data(Bytes::copy_from_slice(body), true)?;
        let response = response.await?;
        let status = response.status();
        let mut answer = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = answer.data().await {
            let data = data?;
            let _ = answer.flow_control().release_capacity(data.len());
            text.extend_from_slice(&data);
        }
        if status != http::StatusCode::OK {
            return Err(format!("broadcast over h2: {status}").into());
        }
        Ok(std::str::from_utf8(&text)?.trim().parse()?)
    }
}
