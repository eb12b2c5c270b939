//! The event payloads every encoding and decoding bench uses.

/// One named payload.
#[derive(Debug, Clone)]
pub struct Input {
    /// Short label for the bench id (`small`, `json-1k`, `1mib`).
    pub label: &'static str,
    /// The event name.
    pub name: &'static str,
    /// The event data.
    pub data: String,
}

/// A small event (a name and 20 bytes), a 1 KiB multi-line JSON document and a 1 MiB
/// single-line payload.
pub fn all() -> Vec<Input> {
    vec![
        Input {
            label: "small",
            name: "update",
            data: "{\"tick\":12345678901}".to_owned(),
        },
        Input {
            label: "json-1k",
            name: "order",
            data: json_1k(),
        },
        Input {
            label: "1mib",
            name: "blob",
            data: "x".repeat(1 << 20),
        },
    ]
}

/// About 1 KiB of pretty-printed JSON: 40-odd short lines.
fn json_1k() -> String {
    let mut out = String::from("{\n  \"items\": [\n");
    let mut i = 0;
    while out.len() < 1000 {
        out += &format!("    {{ \"id\": {i}, \"sku\": \"A-{i:05}\" }},\n");
        i += 1;
    }
    out += "    null\n  ]\n}";
    out
}
