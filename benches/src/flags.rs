//! The benchmark binaries' command lines: `--name N` pairs.

/// Reads `--name N` pairs from the command line into `flags` (each a name and the number it
/// sets); anything else prints `usage` and exits with status 2.
pub fn numbers(usage: &str, flags: &mut [(&str, &mut usize)]) {
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flags.iter_mut().find(|(name, _)| *name == flag), value) {
            (Some((_, number)), Some(v)) => **number = v,
            _ => {
                eprintln!("usage: {usage}");
                std::process::exit(2);
            }
        }
    }
}
