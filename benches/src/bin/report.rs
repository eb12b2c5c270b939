//! Prints criterion's estimates side by side as a Markdown table, with each alternative's
//! time as a multiple of ours (so `3.0×` means ours is three times faster).
//!
//! ```text
//! cargo bench -p sse-benches && cargo run -p sse-benches --bin report
//! ```
//!
//! In every criterion group, the function whose name starts with `sse-proto` is the baseline.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn dirs(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "report"))
        .collect();
    out.sort();
    out
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One measured function on one input: mean time in ns, bytes or elements per iteration.
struct Row {
    function: String,
    ns: f64,
    bytes: Option<f64>,
    elements: Option<f64>,
}

fn row(dir: &Path, function: String) -> Option<Row> {
    let estimates = read_json(&dir.join("new/estimates.json"))?;
    let ns = estimates["mean"]["point_estimate"].as_f64()?;
    let bench = read_json(&dir.join("new/benchmark.json"));
    let throughput = bench.as_ref().map(|b| &b["throughput"]);
    Some(Row {
        function,
        ns,
        bytes: throughput.and_then(|t| t["Bytes"].as_f64()),
        elements: throughput.and_then(|t| t["Elements"].as_f64()),
    })
}

/// The baseline of a group: sse-proto's own implementation.
fn is_ours(function: &str) -> bool {
    function.starts_with("sse-proto")
}

fn human_time(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.1} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

fn human_rate(per_s: f64) -> String {
    match per_s {
        r if r >= 1e9 => format!("{:.2} G", r / 1e9),
        r if r >= 1e6 => format!("{:.2} M", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k", r / 1e3),
        r => format!("{r:.0}"),
    }
}

fn main() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let root = target.join("criterion");
    let groups = dirs(&root);
    if groups.is_empty() {
        eprintln!(
            "no criterion results under {}: run `cargo bench -p sse-benches` first",
            root.display()
        );
        std::process::exit(1);
    }
    for group in groups {
        println!("\n### {}\n", name(&group));
        println!("| input | implementation | time | per second | bytes/s | vs ours |");
        println!("|---|---|---|---|---|---|");
        // criterion lays results out as group/function/input.
        let mut inputs: Vec<String> = Vec::new();
        let functions = dirs(&group);
        for f in &functions {
            // A bench without an input (`bench_function`) holds its results directly.
            if f.join("new").is_dir() {
                if !inputs.contains(&String::new()) {
                    inputs.push(String::new());
                }
                continue;
            }
            for i in dirs(f) {
                if !inputs.contains(&name(&i)) {
                    inputs.push(name(&i));
                }
            }
        }
        for input in &inputs {
            let rows: Vec<Row> = functions
                .iter()
                .filter_map(|f| row(&f.join(input), name(f)))
                .collect();
            let ours = rows.iter().find(|r| is_ours(&r.function)).map(|r| r.ns);
            for r in &rows {
                let per_iter = r.elements.unwrap_or(1.0);
                let rate = human_rate(per_iter * 1e9 / r.ns);
                let bytes = r
                    .bytes
                    .map(|b| format!("{}B", human_rate(b * 1e9 / r.ns)))
                    .unwrap_or_else(|| "-".to_owned());
                let ratio = match ours {
                    Some(_) if is_ours(&r.function) => "1.00×".to_owned(),
                    Some(ours) => format!("{:.2}×", r.ns / ours),
                    None => "-".to_owned(),
                };
                println!(
                    "| {input} | {} | {} | {rate} | {bytes} | {ratio} |",
                    r.function,
                    human_time(r.ns)
                );
            }
        }
    }
}
