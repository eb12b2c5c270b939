//! `--tls`: the hyper demo serves HTTPS with HTTP/2 and HTTP/1.1 through ALPN, from a
//! certificate given with `--cert`/`--key` (the self-signed one it makes by default is what
//! the browser tests use), prints the certificate's fingerprint, and drops a client that does
//! not finish its handshake within the head deadline. The tokio and async-std demos, which
//! speak HTTP/1.1 only, refuse the flags with exit code 2.

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};

/// A certificate for `localhost` and its key, written as PEM files for `--cert`/`--key`.
struct CertFiles {
    dir: PathBuf,
    cert: CertificateDer<'static>,
}

impl CertFiles {
    fn new() -> CertFiles {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sse-tls-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        CertFiles {
            dir,
            cert: made.cert.der().clone(),
        }
    }

    fn flags(&self) -> [String; 4] {
        let path = |name: &str| self.dir.join(name).display().to_string();
        [
            "--cert".to_owned(),
            path("cert.pem"),
            "--key".to_owned(),
            path("key.pem"),
        ]
    }

    /// The fingerprint as the demo prints it.
    fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.cert.as_ref());
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A demo started with `--tls`, killed when dropped.
struct TlsDemo {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl TlsDemo {
    fn start(flags: &[String], env: &[(&str, &str)]) -> TlsDemo {
        let bin = env!("CARGO_BIN_EXE_demo-hyper");
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0", "--tick-ms", "0"])
            .args(flags)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while pipe.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                panic!(
                    "the demo exited before listening: {}",
                    stderr.lock().unwrap()
                );
            };
            let line = line.unwrap();
            assert!(
                !line.starts_with("listening on http://"),
                "with TLS the demo says https://"
            );
            if let Some(addr) = line.strip_prefix("listening on https://") {
                break addr.trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        TlsDemo {
            child,
            addr,
            stderr,
        }
    }
}

impl Drop for TlsDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of `localhost` that trusts `cert` only and offers `alpn`.
fn client(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> rustls::ClientConnection {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("localhost").unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

/// Completes the handshake of `conn` over `tcp`.
fn handshake(
    mut conn: rustls::ClientConnection,
    mut tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

/// A TLS connection to `addr` as `localhost`, trusting `cert` only, offering `alpn`; the
/// handshake done.
fn connect(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    handshake(client(cert, alpn), tcp)
}

#[test]
fn the_hyper_demo_serves_the_given_certificate_with_h2_and_http1_through_alpn() {
    let files = CertFiles::new();
    let demo = TlsDemo::start(&files.flags(), &[]);
    // On stderr, before `listening on` went to stdout: the pipes may arrive in either order.
    let expected = format!("SHA-256 fingerprint {}", files.fingerprint());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !demo.stderr.lock().unwrap().contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "the demo prints the certificate's fingerprint: {}",
            demo.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A browser offers h2 first and gets it.
    let tls = connect(demo.addr, &files.cert, &[b"h2", b"http/1.1"]);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);

    // A client of HTTP/1.1 only is served HTTP/1.1 over TLS.
    let mut tls = connect(demo.addr, &files.cert, &[b"http/1.1"]);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // The demo may end with a TCP close rather than a close_notify: keep what arrived.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("[]"), "{answer}");
}

#[test]
fn a_tls_handshake_must_finish_within_the_head_deadline() {
    let files = CertFiles::new();
    let demo = TlsDemo::start(&files.flags(), &[("SSE_DEMO_HEAD_TIMEOUT_MS", "300")]);
    // A client that sends nothing, and one that stops halfway through its ClientHello (a
    // record header announcing 512 bytes, then one byte).
    for sent in [&b""[..], &b"\x16\x03\x01\x02\x00\x01"[..]] {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(demo.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(sent).unwrap();
        let mut buf = [0u8; 64];
        // EOF, or a reset: either way the demo let go of the socket.
        let n = tcp.read(&mut buf).unwrap_or(0);
        let after = started.elapsed();
        assert_eq!(n, 0, "the demo answered {:?}", &buf[..n]);
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(3),
            "the socket of a client that sent {sent:?} was dropped after {after:?}"
        );
    }
    // A client that does finish its handshake is served.
    let tls = connect(demo.addr, &files.cert, &[b"h2"]);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn the_first_request_is_due_a_head_deadline_after_the_accept_the_handshake_included() {
    let files = CertFiles::new();
    let demo = TlsDemo::start(&files.flags(), &[("SSE_DEMO_HEAD_TIMEOUT_MS", "1000")]);
    // A client that takes 700 ms to start its handshake, finishes it, then sends nothing:
    // it has 300 ms left, not a second deadline of its own.
    let started = Instant::now();
    let tcp = TcpStream::connect(demo.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let mut tls = handshake(client(&files.cert, &[b"http/1.1"]), tcp);
    let mut buf = [0u8; 64];
    // EOF, a close_notify or a reset: the demo let go of the socket.
    let n = tls.read(&mut buf).unwrap_or(0);
    let after = started.elapsed();
    assert_eq!(n, 0, "the demo answered {:?}", &buf[..n]);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(1500),
        "a silent client was dropped {after:?} after it connected (the deadline: 1 s)"
    );
}

/// Runs `bin` with `args` to its end, which must come within 10 s: (exit code, stderr).
fn run(bin: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin)
        .args(["--addr", "127.0.0.1:0", "--tick-ms", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} {args:?} still runs after 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), stderr.join().unwrap())
}

#[test]
fn the_http1_demos_refuse_tls_and_point_to_a_proxy() {
    for bin in [
        env!("CARGO_BIN_EXE_demo-tokio"),
        env!("CARGO_BIN_EXE_demo-async-std"),
    ] {
        for args in [&["--tls"][..], &["--cert", "c.pem", "--key", "k.pem"][..]] {
            let (code, stderr) = run(bin, args);
            assert_eq!(code, Some(2), "{bin} {args:?}: {stderr}");
            assert!(
                stderr.contains("HTTP/1.1 only") && stderr.contains("TLS-terminating proxy"),
                "{bin} {args:?}: {stderr}"
            );
        }
    }
}

#[test]
fn the_hyper_demo_refuses_half_a_certificate_and_unreadable_files() {
    let bin = env!("CARGO_BIN_EXE_demo-hyper");
    let (code, stderr) = run(bin, &["--cert", "cert.pem"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--cert needs --key"), "{stderr}");
    let (code, stderr) = run(bin, &["--key", "key.pem", "--tls"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--key needs --cert"), "{stderr}");
    let missing = std::env::temp_dir().join("sse-tls-test-no-such-file.pem");
    let missing = missing.display().to_string();
    let (code, stderr) = run(bin, &["--cert", &missing, "--key", &missing]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("--cert {missing}")), "{stderr}");
}
