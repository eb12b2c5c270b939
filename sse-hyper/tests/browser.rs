//! End-to-end tests of the demo (`examples/hyper-demo.rs`) in real clients: headless Chromium's
//! EventSource (through playwright-core) and the npm `eventsource` package in Node. The tests
//! themselves are in `tests-browser/*.test.mjs`; this runs them with `node --test` so that
//! `cargo test --workspace` covers them, and fails (never skips) when their tools are missing.
//!
//! The demo binary is `target/<profile>/demo-hyper` (this crate's `examples/hyper-demo.rs`, built as
//! a binary of `conformance/`, which `cargo test --workspace` builds), or `$DEMO_BIN`. When it
//! is missing or older than its sources (`cargo test -p sse-hyper --test browser` alone), it
//! is built here with `cargo build -p sse-conformance --bin demo-hyper`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long the whole Node run may take before it is killed and the test fails.
const NODE_DEADLINE: Duration = Duration::from_secs(300);

const SETUP_HINT: &str = "run scripts/install-test-deps (scripts/test does): it installs \
     Debian's chromium and tests-browser/node_modules";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sse-hyper lives in the workspace root")
        .to_path_buf()
}

/// The newest modification time of the files under `path` (recursively).
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest(&entry.path()))
        .max()
}

/// The demo binary, built first when it is missing or older than what it is built from.
fn demo_binary(root: &Path) -> PathBuf {
    if let Some(bin) = std::env::var_os("DEMO_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/browser-<hash> -> target/<profile>/demo-hyper: the sse-hyper demo
    // built as a binary of the conformance crate, which `cargo test --workspace` builds
    // (examples are built for tests too, but not linked where a test can find them).
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("demo-hyper");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = [
        "Cargo.toml",
        "Cargo.lock",
        "demo",
        "sse-hyper/Cargo.toml",
        "sse-hyper/src",
        "sse-hyper/examples",
        "sse-proto/Cargo.toml",
        "sse-proto/src",
        "conformance/Cargo.toml",
        "conformance/src/bin/demo-hyper.rs",
    ]
    .iter()
    .filter_map(|p| newest(&root.join(p)))
    .max();
    let stale = match (built, sources) {
        (Some(built), Some(sources)) => built < sources,
        (Some(_), None) => false,
        (None, _) => true,
    };
    if stale {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(root)
            .args(["build", "-p", "sse-conformance", "--bin", "demo-hyper"]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cargo runs");
        assert!(
            status.success(),
            "cargo build -p sse-conformance --bin demo-hyper failed"
        );
    }
    assert!(bin.is_file(), "no demo binary at {}", bin.display());
    bin
}

#[test]
fn demo_in_chromium_and_node_eventsource() {
    let root = repo_root();
    let tests = root.join("tests-browser");
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        chromium.exists(),
        "{} is missing: {SETUP_HINT}",
        chromium.display()
    );
    assert!(
        tests.join("node_modules").is_dir(),
        "tests-browser/node_modules is missing: {SETUP_HINT}"
    );
    let demo = demo_binary(&root);

    let started = Instant::now();
    let mut child = Command::new("node")
        .current_dir(&tests)
        .args(["--test", "--test-reporter=tap", "--test-concurrency=1", "."])
        .env("DEMO_BIN", &demo)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (Node.js 20+ is needed): {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if started.elapsed() > NODE_DEADLINE {
            // What is still running under node (a test file's process, a browser), for the
            // report: a hang says little by itself.
            if let Ok(ps) = Command::new("ps")
                .args(["-eo", "pid,ppid,etime,args", "--forest"])
                .output()
            {
                eprintln!(
                    "node --test is past its deadline; processes:\n{}",
                    String::from_utf8_lossy(&ps.stdout)
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    println!("{out}");
    if !err.is_empty() {
        eprintln!("{err}");
    }
    println!("node --test ran for {:.1?}", started.elapsed());

    let status =
        status.unwrap_or_else(|| panic!("node --test did not finish in {NODE_DEADLINE:?}"));
    assert!(
        status.success(),
        "node --test failed ({status}): see its output above"
    );
    let count = |key: &str| {
        out.lines()
            .find_map(|line| line.strip_prefix(key)?.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no `{key}` line in node's output"))
    };
    assert!(count("# pass") > 0, "node --test passed no test");
    assert_eq!(count("# fail"), 0);
}
