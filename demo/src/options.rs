//! The demos' command line (DESIGN.md, "The demo contract"), and the hub settings it asks for.

use std::time::Duration;

use sse_proto::{Hub, HubBuilder, Key, KeyRing, ResumeConfig, WriteWindow};
use sse_redis::RedisConfig;

/// Command-line options shared by every demo.
pub struct Options {
    /// Where to listen (`--addr`).
    pub addr: std::net::SocketAddr,
    /// The keep-alive interval of idle streams (`--keep-alive-ms`); `None` when off.
    pub keep_alive: Option<Duration>,
    /// The reconnection delay sent to browsers (`--retry-ms`).
    pub retry: Duration,
    /// The `sync-time` tick interval (`--tick-ms`); zero for none.
    pub tick: Duration,
    /// Resume mode's grace period; `None` (the default, `--resume-ms 0`) keeps it off.
    pub resume: Option<Duration>,
    /// How writers batch frames (`--write-window`, or `--coalesce-ms N` for a fixed one);
    /// the library's default unless asked.
    pub window: WriteWindow,
    /// Signed ids: the key (`--secret`, 64 hex digits).
    pub secret: Option<Key>,
    /// Several nodes on one Redis or a Redis Cluster (`--redis URL`, with `--heartbeat-ms`,
    /// `--redis-timeout-ms`, `--redis-replicas` and `--redis-shards`): the engine's settings.
    pub redis: Option<RedisConfig>,
    /// HTTPS with HTTP/2 (`--tls`, `--cert FILE --key FILE`): the hyper demo serves it, the
    /// HTTP/1.1-only demos refuse it.
    pub tls: Option<Tls>,
}

/// Where the certificate of `--tls` comes from.
pub enum Tls {
    /// `--tls` alone: a certificate made at start, self-signed for localhost.
    SelfSigned,
    /// `--cert FILE --key FILE`: a certificate chain and its private key, PEM files.
    Files {
        /// The certificate chain, leaf first.
        cert: std::path::PathBuf,
        /// Its private key.
        key: std::path::PathBuf,
    },
}

/// How to use the demo, for `--help` and for a bad flag.
const USAGE: &str = "usage: demo [--addr HOST:PORT] [--keep-alive-ms N] [--retry-ms N] [--tick-ms N] [--resume-ms N]
            [--write-window off|adaptive:N|fixed:N] [--coalesce-ms N]
            [--secret HEX] [--redis URL [--heartbeat-ms N] [--redis-timeout-ms N] [--redis-replicas N]
            [--redis-shards N]]
            [--tls [--cert FILE --key FILE]]

  --addr HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 picks a free one)
  --keep-alive-ms N    keep-alive comment interval on idle streams (default 15000; 0 = off)
  --retry-ms N         reconnection delay sent to browsers (default 3000)
  --tick-ms N          sync-time tick interval (default 1000; 0 = no ticks)
  --resume-ms N        resume mode: sessions outlive their connection for N ms and a
                       reconnect gets exactly what it missed (default 0 = off)
  --write-window W     how a stream's writer batches events into one vectored write;
                       closes and shutdowns never wait. adaptive:N (the default, N = 5):
                       a writer that wrote less than N ms ago waits until N ms after that
                       write, one quiet for N ms writes at once; fixed:N: each event waits
                       up to N ms for more; off: every event is written at once
  --coalesce-ms N      the same as --write-window fixed:N (0 = off)
  --secret HEX         signed ids: a 32-byte key as 64 hex digits; ids are bound to the
                       `user` cookie, which stands in for a login (default: unsigned ids)
  --redis URL          several nodes on one Redis (redis://HOST:PORT), on a Redis
                       Cluster (redis+cluster://HOST:PORT,HOST:PORT,…: any of its nodes),
                       or on independent servers the shards are spread over
                       (redis+shards://HOST:PORT,HOST:PORT,…, with --redis-shards):
                       any node reaches, closes, lists and (with --resume-ms) resumes any
                       node's sessions. The demo waits for Redis before it listens: it
                       retries with a backoff, one line on stderr per failed attempt; a
                       URL that is neither is refused (exit code 2)
  --heartbeat-ms N     with --redis: how often this node tells Redis it is alive (one
                       write); a node silent for three is found dead, and its sessions
                       detached (default 2000)
  --redis-timeout-ms N with --redis: how long a command waits for Redis before it counts
                       as away (default 2000)
  --redis-replicas N   with --redis: how many replicas must have a write before it counts
                       as done (WAIT), so that what was acknowledged survives a failover
                       (default 0)
  --redis-shards N     with --redis: how many shards the deployment keeps its keys on,
                       each with a sequence of its own (on a Redis Cluster their slots
                       spread over the masters); 1 to 36, the same on every node
                       (default 1). Order then holds per session, topic, user and for
                       the broadcasts, not across them
  --tls                HTTPS, with HTTP/2 offered through ALPN, so that every tab of a
                       browser shares one connection (over HTTP/1.1 a browser opens six
                       per origin, one per tab's stream, and a seventh tab cannot load).
                       The hyper demo only (the tokio and async-std demos speak HTTP/1.1:
                       put a TLS-terminating proxy in front of them). Without --cert, a
                       certificate self-signed for localhost and 127.0.0.1 is made at
                       start (its SHA-256 fingerprint goes to stderr). Prints
                       `listening on https://ADDR`
  --cert FILE          with --key: serve this certificate chain (PEM, leaf first) instead
  --key FILE           the private key of --cert (PEM); the two imply --tls";

impl Options {
    /// Reads the flags, or exits with a usage message; and starts logging to stderr, at
    /// `info` unless `RUST_LOG` says otherwise (`RUST_LOG=sse=debug` shows every session's
    /// life).
    pub fn from_args() -> Options {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("{USAGE}");
            std::process::exit(0);
        }
        match Options::parse(args.into_iter()) {
            Ok(opts) => opts,
            Err(msg) => {
                eprintln!("demo: {msg}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut opts = Options {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            keep_alive: Some(Duration::from_secs(15)),
            retry: Duration::from_secs(3),
            tick: Duration::from_secs(1),
            resume: None,
            window: WriteWindow::DEFAULT,
            secret: None,
            redis: None,
            tls: None,
        };
        let (mut heartbeat, mut timeout, mut replicas, mut shards) = (None, None, None, None);
        let (mut tls, mut cert, mut key) = (false, None, None);
        while let Some(flag) = args.next() {
            if flag == "--tls" {
                tls = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let ms = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{flag}: not a number of milliseconds: {value}"))
            };
            match flag.as_str() {
                "--addr" => {
                    opts.addr = value
                        .parse()
                        .map_err(|_| format!("--addr: bad address {value}"))?
                }
                "--keep-alive-ms" => opts.keep_alive = Some(ms()?).filter(|d| !d.is_zero()),
                "--retry-ms" => opts.retry = ms()?,
                "--tick-ms" => opts.tick = ms()?,
                "--resume-ms" => opts.resume = Some(ms()?).filter(|d| !d.is_zero()),
                "--coalesce-ms" => opts.window = WriteWindow::Fixed(ms()?),
                "--write-window" => opts.window = write_window(&value)?,
                "--secret" => {
                    opts.secret =
                        Some(Key::from_hex("k1", &value).map_err(|e| format!("--secret: {e}"))?)
                }
                "--redis" => {
                    let schemes = ["redis://", "redis+cluster://", "redis+shards://"];
                    if !schemes.iter().any(|s| value.starts_with(s)) {
                        return Err(format!(
                            "--redis: not a redis://, redis+cluster:// or redis+shards:// URL: \
                             {value}"
                        ));
                    }
                    opts.redis = Some(RedisConfig::new(value));
                }
                "--heartbeat-ms" => heartbeat = Some(ms()?).filter(|d| !d.is_zero()),
                "--redis-timeout-ms" => timeout = Some(ms()?).filter(|d| !d.is_zero()),
                "--redis-replicas" => {
                    replicas = Some(value.parse::<usize>().map_err(|_| {
                        format!("--redis-replicas: not a number of replicas: {value}")
                    })?)
                }
                "--redis-shards" => {
                    shards = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=36).contains(n))
                            .ok_or_else(|| {
                                format!("--redis-shards: not a number of shards (1 to 36): {value}")
                            })?,
                    )
                }
                "--cert" => cert = Some(std::path::PathBuf::from(value)),
                "--key" => key = Some(std::path::PathBuf::from(value)),
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        match &mut opts.redis {
            Some(config) => {
                config.heartbeat = heartbeat.unwrap_or(config.heartbeat);
                config.timeout = timeout.unwrap_or(config.timeout);
                config.replicas = replicas.unwrap_or(config.replicas);
                config.shards = shards.unwrap_or(config.shards);
            }
            None if heartbeat.is_some()
                || timeout.is_some()
                || replicas.is_some()
                || shards.is_some() =>
            {
                return Err("--heartbeat-ms, --redis-timeout-ms, --redis-replicas and \
                     --redis-shards need --redis"
                    .to_owned());
            }
            None => {}
        }
        opts.tls = match (tls, cert, key) {
            (_, Some(cert), Some(key)) => Some(Tls::Files { cert, key }),
            (_, Some(_), None) => return Err("--cert needs --key".to_owned()),
            (_, None, Some(_)) => return Err("--key needs --cert".to_owned()),
            (true, None, None) => Some(Tls::SelfSigned),
            (false, None, None) => None,
        };
        Ok(opts)
    }
}

impl Options {
    /// The hub settings the options ask for; an adapter's server builds the hub (with its
    /// clock, and with the Redis engine as its store under `--redis`).
    pub fn settings(&self) -> HubBuilder {
        let opts = self;
        let mut builder = Hub::builder()
            .retry(opts.retry)
            .keep_alive(opts.keep_alive)
            .write_window(opts.window)
            .topic_rule(crate::groups::grants);
        if let Some(resume) = opts.resume {
            builder = builder.resume(ResumeConfig::new(resume));
        }
        if let Some(key) = &opts.secret {
            builder = builder.signing(KeyRing::new(key.clone()));
        }
        builder
    }
}

/// `--write-window`: `off`, `adaptive:N` or `fixed:N`, N in milliseconds.
fn write_window(value: &str) -> Result<WriteWindow, String> {
    let bad = || format!("--write-window: expected off, adaptive:N or fixed:N (ms), got {value}");
    if value == "off" {
        return Ok(WriteWindow::Off);
    }
    let (kind, n) = value.split_once(':').ok_or_else(bad)?;
    let n = Duration::from_millis(n.parse().map_err(|_| bad())?);
    match kind {
        "adaptive" => Ok(WriteWindow::Adaptive(n)),
        "fixed" => Ok(WriteWindow::Fixed(n)),
        _ => Err(bad()),
    }
}
