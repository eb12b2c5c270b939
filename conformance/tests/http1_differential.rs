//! Differential test of the core's HTTP/1.1 request reader against hyper's HTTP/1 server.
//!
//! The same byte stream goes to `sse_http1::proto::RequestReader` and to
//! `hyper::server::conn::http1` (over an in-memory duplex pipe, with a service that records
//! each request's method, target and whole body). Both must make the same accept/refuse
//! decision and the same framing: the same requests, in the same number, with the same
//! bodies. The stream ends after its bytes (the client half-closes), so a request cut short
//! counts as refused on both sides.
//!
//! Where we differ from hyper on purpose, the case is in [`DIFFERENCES`] with its RFC reason,
//! and the test checks that each listed case differs in exactly the listed way, so the list
//! cannot go stale: if hyper or the reader changes, the test fails.
//!
//! | case | sse-proto | hyper 1.x | why |
//! |------|-----------|-----------|-----|
//! | HTTP/1.1 without `Host` | 400 | accepts | RFC 9112 §3.2: "MUST respond with a 400" |
//! | two `Host` lines | 400 | accepts | RFC 9112 §3.2, same sentence |
//! | `Host: user@h` | 400 | accepts | RFC 9112 §3.2: invalid Host value; RFC 9110 §7.2 has no userinfo |
//! | `Transfer-Encoding` + `Content-Length` | 400 | reads chunked, then closes | RFC 9112 §6.1/§6.3 ¶3: may be rejected; it is the smuggling vector |
//! | `Transfer-Encoding: gzip, chunked` | 501 | passes gzip bytes on undecoded | RFC 9112 §6.1: unknown coding SHOULD get 501 |
//! | `Transfer-Encoding: chunked, chunked` | 400 | accepts | RFC 9112 §6.1: chunked MUST NOT be applied twice |
//! | `Transfer-Encoding: chunked,` | accepts | 400 | RFC 9110 §5.6.1: empty list elements MUST be ignored |
//! | `Expect: teapot` | 417 | ignores it | RFC 9110 §10.1.1: 417 for an unknown expectation |
//! | HTTP/1.0 `Connection: keep-alive`, pipelined | 1 request, then close | 2 requests | RFC 9112 §9.3: honouring 1.0 keep-alive is optional |
//! | 70 header lines | 431 | accepts (limit 100) | a resource limit (`MAX_HEADERS` = 64), RFC 6585 §5 |
//! | a 5000-byte chunk extension | 400 | accepts (16 KiB per body) | a resource limit (`MAX_CHUNK_LINE` = 4096); RFC 9112 §7.1.1 lets a server limit extensions |
//! | a chunk extension outside its grammar (a NUL or other control byte, an unclosed quote, no name) | 400 | skips it | RFC 9112 §7.1.1: `chunk-ext-name = token`, `chunk-ext-val = token / quoted-string`; a front end that reads extensions otherwise finds another end of the line |
//! | a 20 KiB trailer section | accepts (limit `max_head`, 64 KiB here) | refuses (16 KiB) | a resource limit that follows the head limit; RFC 9112 §7.1.2 |

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sse_http1::proto::{ReaderLimits, RequestReader, wants_close};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as a server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// What a server made of a whole byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Seen>,
    /// The stream was refused (an error answer, or cut short) after `requests`.
    refused: bool,
}

impl Outcome {
    fn shape(&self) -> (usize, bool) {
        (self.requests.len(), self.refused)
    }
}

/// The core's reader, driven as the adapters drive it: drain requests, stop after one that
/// closes the connection.
fn ours(wire: &[u8]) -> Outcome {
    let t0 = Instant::now();
    let mut reader = RequestReader::new(ReaderLimits {
        max_head: 64 * 1024,
        max_body: 1 << 20,
    });
    reader.handle_ready(t0);
    reader.handle_read(wire, t0);
    let mut requests = Vec::new();
    loop {
        match reader.poll_request() {
            Ok(Some(req)) => {
                let close = wants_close(&req);
                requests.push(Seen {
                    method: req.method().to_string(),
                    target: req.uri().to_string(),
                    body: req.body().to_vec(),
                });
                if close {
                    return Outcome {
                        requests,
                        refused: false,
                    };
                }
                reader.handle_ready(t0);
            }
            Ok(None) => {
                let refused = reader.is_mid_request();
                return Outcome { requests, refused };
            }
            Err(_) => {
                return Outcome {
                    requests,
                    refused: true,
                };
            }
        }
    }
}

/// hyper's HTTP/1 server over a duplex pipe: write the stream, half-close, read the answers.
async fn hyper(wire: &[u8]) -> Outcome {
    let (client, server) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let body_failed = Arc::new(Mutex::new(false));
    let service = {
        let seen = seen.clone();
        let body_failed = body_failed.clone();
        service_fn(move |req: hyper::Request<Incoming>| {
            let seen = seen.clone();
            let body_failed = body_failed.clone();
            async move {
                let (parts, body) = req.into_parts();
                match body.collect().await {
                    Ok(body) => seen.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        target: parts.uri.to_string(),
                        body: body.to_bytes().to_vec(),
                    }),
                    Err(_) => *body_failed.lock().unwrap() = true,
                }
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service);
    let (mut rd, mut wr) = tokio::io::split(client);
    let write = async {
        let _ = wr.write_all(wire).await;
        let _ = wr.shutdown().await;
    };
    let read = async {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
    };
    let (result, (), ()) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(conn, write, read)
    })
    .await
    .expect("hyper finishes a finite stream");
    let requests = seen.lock().unwrap().clone();
    let refused = result.is_err() || *body_failed.lock().unwrap();
    Outcome { requests, refused }
}

/// Cases on which both must agree.
const SAME: &[(&str, &str)] = &[
    ("simple GET", "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    (
        "query and absolute-form",
        "GET /a?b=c HTTP/1.1\r\nHost: h\r\n\r\nGET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    ("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"),
    (
        "HTTP/1.0 closes after one",
        "GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    ),
    (
        "pipelined",
        "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "Connection: close ends the pipeline",
        "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "Connection list with close",
        "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "bare LF line ends",
        "GET /lf HTTP/1.1\nHost: h\n\nGET /2 HTTP/1.1\nHost: h\n\n",
    ),
    (
        "empty lines before the request line",
        "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "obs-fold",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    ),
    ("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
    ("garbage", "NOT A REQUEST\r\n\r\n"),
    ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("unknown version", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
    ("cut short in the head", "GET / HTTP/1.1\r\nHost: h\r\n"),
    (
        "cut short in the body",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
    ),
    (
        "double Content-Length, same",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    ),
    (
        "double Content-Length, different",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    ),
    (
        "Content-Length list",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    ),
    (
        "Content-Length +3",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    ),
    (
        "Content-Length -1",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    ),
    (
        "Content-Length 3 3",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  3 3\r\n\r\nabc",
    ),
    (
        "Content-Length hex",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
    ),
    (
        "Content-Length empty",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
    ),
    (
        "Content-Length overflow",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    ),
    (
        "chunked",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "chunked with extensions and trailers",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n3;a=b;c=\"d e\"\r\nabc\r\n02 ;x\r\nde\r\n0;end\r\nT: 1\r\nU: 2\r\n\r\n",
    ),
    (
        "chunked, bad size",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, empty size",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, negative size",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, size overflow",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, bare LF after size",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, LF in extension",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x\ny\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunked, data longer than size",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    ),
    (
        "chunked, no final CRLF",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
    ),
    (
        "chunked, size then space then digit",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 3\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding gzip",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    ),
    (
        "Transfer-Encoding chunked then gzip",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding on HTTP/1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "Expect 100-continue",
        "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    ),
    (
        "Expect 100-continue, chunked",
        "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    ("HEAD", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"),
    (
        "bare LF in a trailer",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: a\nY: b\r\n\r\n",
    ),
    (
        "stray CRLF after a body",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok\r\n",
    ),
];

/// A deliberate difference: the case, each side's (requests, refused), and the reason.
struct Difference {
    case: &'static str,
    wire: &'static str,
    ours: (usize, bool),
    hyper: (usize, bool),
    why: &'static str,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        case: "HTTP/1.1 without Host",
        wire: "GET / HTTP/1.1\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host",
    },
    Difference {
        case: "two Host lines",
        wire: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §3.2: MUST answer 400 to more than one Host line",
    },
    Difference {
        case: "Host with userinfo",
        wire: "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §3.2: MUST answer 400 to an invalid Host (RFC 9110 §7.2: host[:port])",
    },
    Difference {
        case: "Transfer-Encoding then Content-Length",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §6.1, §6.3 item 3: a server MAY reject both; it is how requests are smuggled",
    },
    Difference {
        case: "Content-Length then Transfer-Encoding",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §6.1, §6.3 item 3 (hyper reads chunked and closes after it)",
    },
    Difference {
        case: "gzip before chunked",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §6.1: a coding the server does not decode SHOULD get 501",
    },
    Difference {
        case: "chunked twice",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §6.1: chunked MUST NOT be applied more than once",
    },
    Difference {
        case: "chunked with an empty list element",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ours: (1, false),
        hyper: (0, true),
        why: "RFC 9110 §5.6.1: a recipient MUST ignore empty list elements",
    },
    Difference {
        case: "unknown expectation",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\nok",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9110 §10.1.1: an unknown expectation MAY be answered 417",
    },
    Difference {
        case: "HTTP/1.0 keep-alive",
        wire: "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
        ours: (1, false),
        hyper: (2, false),
        why: "RFC 9112 §9.3: persisting an HTTP/1.0 connection is up to the server",
    },
    Difference {
        case: "70 header lines",
        wire: "",
        ours: (0, true),
        hyper: (1, false),
        why: "resource limit: MAX_HEADERS is 64, hyper's is 100 (RFC 6585 §5: 431)",
    },
    Difference {
        case: "a 5000-byte chunk extension",
        wire: "",
        ours: (0, true),
        hyper: (1, false),
        why: "resource limit: MAX_CHUNK_LINE is 4096 per size line, hyper allows 16 KiB of extensions per body",
    },
    Difference {
        case: "a NUL in a chunk extension",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nabcde\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §7.1.1: chunk-ext-val is a token or a quoted-string; a NUL is neither",
    },
    Difference {
        case: "a control byte in a quoted chunk extension",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"\x0b\"\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9110 §5.6.4: qdtext has no control bytes but HTAB",
    },
    Difference {
        case: "an unclosed quoted chunk extension",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"open\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §7.1.1: a quoted-string ends in DQUOTE before the line's CRLF",
    },
    Difference {
        case: "a chunk extension without a name",
        wire: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;=v\r\nabc\r\n0\r\n\r\n",
        ours: (0, true),
        hyper: (1, false),
        why: "RFC 9112 §7.1.1: chunk-ext-name is a token (one or more tchar)",
    },
    Difference {
        case: "a 20 KiB trailer section",
        wire: "",
        ours: (1, false),
        hyper: (0, true),
        why: "resource limit: trailers may be as long as a head (max_head, 64 KiB here), hyper stops at 16 KiB",
    },
];

/// The wire of a difference; the long ones are built here.
fn wire_of(d: &Difference) -> Vec<u8> {
    let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    match d.case {
        "70 header lines" => {
            let headers: String = (0..69).map(|i| format!("X-{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_bytes()
        }
        "a 5000-byte chunk extension" => {
            let ext = "e".repeat(5000);
            format!("{chunked}3;{ext}\r\nabc\r\n0\r\n\r\n").into_bytes()
        }
        "a 20 KiB trailer section" => {
            let trailers: String = (0..60)
                .map(|i| format!("T-{i}: {}\r\n", "t".repeat(100)))
                .collect::<String>()
                + &format!("T-long: {}\r\n", "t".repeat(14 * 1024));
            format!("{chunked}3\r\nabc\r\n0\r\n{trailers}\r\n").into_bytes()
        }
        _ => d.wire.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn agrees_with_hyper_on_edge_cases() {
    let mut failures = Vec::new();
    for (name, wire) in SAME {
        let (a, b) = (ours(wire.as_bytes()), hyper(wire.as_bytes()).await);
        if a != b {
            failures.push(format!("{name}: ours {a:?}\n  hyper {b:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn differs_from_hyper_exactly_where_listed() {
    let mut failures = Vec::new();
    for d in DIFFERENCES {
        let wire = wire_of(d);
        let (a, b) = (ours(&wire), hyper(&wire).await);
        if a.shape() != d.ours || b.shape() != d.hyper || a == b {
            failures.push(format!(
                "{} ({}): listed ours {:?} hyper {:?}, got ours {a:?}\n  hyper {b:?}",
                d.case, d.why, d.ours, d.hyper
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small deterministic generator (xorshift), so a failure names its seed.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One generated request, within the space where no listed difference applies; some are
/// broken in ways both must refuse.
fn generated_request(g: &mut Gen, out: &mut Vec<u8>) {
    let method = g.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    let target = g.pick(&["/", "/a?b=c", "/events", "/x%20y", "http://h/abs", "/p/q/"]);
    let http10 = g.chance(10);
    let eol = if g.chance(20) { "\n" } else { "\r\n" };
    let mut head = format!(
        "{method} {target} HTTP/1.{}{eol}",
        if http10 { 0 } else { 1 }
    );
    let mut headers: Vec<String> = Vec::new();
    if !http10 || g.chance(50) {
        headers.push(format!(
            "Host: {}",
            g.pick(&["h", "h:8080", "127.0.0.1", ""])
        ));
    }
    for _ in 0..g.below(4) {
        let extra = g.pick(&[
            "Accept: text/event-stream",
            "X-A: v",
            "Cache-Control: no-cache",
            "Connection: keep-alive",
            "Last-Event-ID: 7",
            "User-Agent: gen/1",
        ]);
        // HTTP/1.0 keep-alive is a listed difference.
        if !(http10 && extra.starts_with("Connection")) {
            headers.push(extra.to_owned());
        }
    }
    if g.chance(10) {
        headers.push("Connection: close".to_owned());
    }
    let body: Vec<u8> = (0..g.below(20)).map(|i| b'a' + (i % 26) as u8).collect();
    let mut payload = Vec::new();
    match g.below(10) {
        0..=2 => {}
        3..=4 => {
            headers.push(format!("Content-Length: {}", body.len()));
            if g.chance(20) {
                headers.push(format!("Content-Length: {}", body.len()));
            }
            payload.extend_from_slice(&body);
        }
        5 => {
            // Broken Content-Length grammar or disagreeing lines: both refuse.
            let bad = g.pick(&["+3", "-1", "3 3", "0x10", "", "3, 3", "1e2", "3;", "3.0"]);
            headers.push(format!("Content-Length: {bad}"));
            if g.chance(30) {
                headers.push("Content-Length: 4".to_owned());
                headers.push("Content-Length: 5".to_owned());
            }
            payload.extend_from_slice(&body);
        }
        6..=8 if !http10 => {
            headers.push(format!(
                "Transfer-Encoding: {}",
                g.pick(&["chunked", "Chunked", "CHUNKED", " chunked"])
            ));
            if g.chance(20) {
                headers.push("Expect: 100-continue".to_owned());
            }
            chunked(g, &body, &mut payload);
        }
        _ => {
            if http10 {
                headers.push("Transfer-Encoding: chunked".to_owned());
            } else {
                headers.push(format!(
                    "Transfer-Encoding: {}",
                    g.pick(&["gzip", "chunked, gzip", "identity", "chunked;x=1"])
                ));
            }
            chunked(g, &body, &mut payload);
        }
    }
    if g.chance(10) && !headers.iter().any(|h| h.starts_with("Transfer")) {
        headers.push("Expect: 100-continue".to_owned());
        if !headers.iter().any(|h| h.starts_with("Content-Length")) {
            headers.push(format!("Content-Length: {}", body.len()));
            payload.extend_from_slice(&body);
        }
    }
    let n = headers.len();
    for i in 0..n {
        let j = g.below(n);
        headers.swap(i, j);
    }
    for h in headers {
        head.push_str(&h);
        head.push_str(eol);
    }
    head.push_str(eol);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&payload);
}

/// `body` in chunks of random sizes, with optional extensions and trailers; sometimes broken
/// in a way both refuse.
fn chunked(g: &mut Gen, body: &[u8], out: &mut Vec<u8>) {
    let mut rest = body;
    while !rest.is_empty() {
        let n = (g.below(7) + 1).min(rest.len());
        let size = if g.chance(20) {
            format!("{n:X}")
        } else {
            format!("{n:x}")
        };
        let ext = g.pick(&["", "", "", ";a", ";a=b", " ;q=\"x y\"", "\t"]);
        out.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(g.pick(&["0\r\n", "0;e\r\n", "000\r\n"]).as_bytes());
    if g.chance(20) {
        out.extend_from_slice(b"X-Trailer: t\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if g.chance(8) {
        // Break it: a bad size line, a missing CRLF, a bare LF or a short chunk.
        let at = g.below(out.len().max(1));
        let broken = g.pick(&["g\r\n", "\n", "5\r\nab\r\n", "-1\r\n", "\r"]);
        out.splice(at..at, broken.bytes());
    }
}

#[tokio::test]
async fn agrees_with_hyper_on_generated_streams() {
    let mut failures = Vec::new();
    let (mut compared, mut refused, mut with_body, mut pipelined) = (0, 0, 0, 0);
    for seed in 1..=400u64 {
        let mut g = Gen(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut wire = Vec::new();
        for _ in 0..g.below(3) + 1 {
            generated_request(&mut g, &mut wire);
        }
        if g.chance(10) {
            let cut = g.below(wire.len());
            wire.truncate(cut);
        }
        let (a, b) = (ours(&wire), hyper(&wire).await);
        compared += 1;
        refused += usize::from(a.refused);
        with_body += usize::from(a.requests.iter().any(|r| !r.body.is_empty()));
        pipelined += usize::from(a.requests.len() > 1);
        if a != b {
            failures.push(format!(
                "seed {seed}: {:?}\n  ours {a:?}\n  hyper {b:?}",
                String::from_utf8_lossy(&wire)
            ));
        }
    }
    println!(
        "{compared} streams: {refused} refused, {with_body} with a body, {pipelined} pipelined"
    );
    // The generator reaches both decisions and real framing.
    assert!(refused >= 40 && with_body >= 80 && pipelined >= 80);
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
