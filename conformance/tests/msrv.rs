//! The workspace's MSRV (`rust-version` in Cargo.toml, stated in CONTRIBUTING.md) against the
//! `rust-version` of every package in the lock file, as `cargo metadata` reports them: a
//! dependency that needs a newer Rust than ours fails here, named, instead of failing a user
//! on the MSRV toolchain. (Packages that declare no `rust-version` are listed, not failed.)

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::process::Command;

/// `1.85` or `1.85.0` as (major, minor, patch).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap());
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_workspace() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();

    let msrv = packages
        .iter()
        .find(|p| p["name"] == "sse-proto")
        .and_then(|p| p["rust_version"].as_str())
        .map(version)
        .expect("sse-proto states its rust-version");
    let mut newer = Vec::new();
    let mut undeclared = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let at = p["version"].as_str().unwrap();
        match p["rust_version"].as_str() {
            Some(needs) if members.contains(&p["id"].as_str().unwrap()) => {
                assert_eq!(
                    version(needs),
                    msrv,
                    "{name} states the workspace's rust-version"
                );
            }
            Some(needs) if version(needs) > msrv => {
                newer.push(format!("{name} {at} needs {needs}"))
            }
            Some(_) => {}
            None => undeclared.push(format!("{name} {at}")),
        }
    }
    assert!(packages.len() > 50, "the lock file's packages were read");
    assert!(
        newer.is_empty(),
        "dependencies newer than the MSRV {msrv:?}: {newer:#?}"
    );
    eprintln!(
        "{} packages, none above {msrv:?}; no rust-version: {undeclared:?}",
        packages.len()
    );
}
