//! Reading Redis replies: stream entries, their sequence numbers and fields.

use redis::Value;

/// One stream entry: its sequence number (the `<seq>` of its `<seq>-0` id) and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The value of field `name`.
    pub(crate) fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The sequence number of a stream id `<seq>-<n>`.
pub(crate) fn seq_of(id: &[u8]) -> Option<u64> {
    let ms = id.split(|&b| b == b'-').next()?;
    std::str::from_utf8(ms).ok()?.parse().ok()
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// An integer reply (or a number in a string).
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// A list of entries, as `XRANGE` returns it (and each stream of an `XREAD`).
pub(crate) fn entries(v: &Value) -> Vec<Entry> {
    items(v)
        .iter()
        .filter_map(|e| {
            let [id, fields] = items(e) else { return None };
            let seq = seq_of(bytes(id)?)?;
            let fields = match fields {
                Value::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((bytes(k)?.to_vec(), bytes(v)?.to_vec())))
                    .collect(),
                other => items(other)
                    .chunks(2)
                    .filter_map(|kv| match kv {
                        [k, v] => Some((bytes(k)?.to_vec(), bytes(v)?.to_vec())),
                        _ => None,
                    })
                    .collect(),
            };
            Some(Entry { seq, fields })
        })
        .collect()
}

/// An `XREAD` reply: each stream's name and entries (none on a timeout).
pub(crate) fn xread(v: &Value) -> Vec<(Vec<u8>, Vec<Entry>)> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((bytes(k)?.to_vec(), entries(v))))
            .collect(),
        other => items(other)
            .iter()
            .filter_map(|s| match items(s) {
                [name, list] => Some((bytes(name)?.to_vec(), entries(list))),
                _ => None,
            })
            .collect(),
    }
}

/// The elements of an array reply.
pub(crate) fn array(v: &Value) -> &[Value] {
    items(v)
}

/// A bulk or simple string reply.
pub(crate) fn text(v: &Value) -> Option<&[u8]> {
    bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn reads_stream_entries_in_both_protocols() {
        let entry = Value::Array(vec![
            bulk("17-0"),
            Value::Array(vec![bulk("f"), bulk("data: x\n\n"), bulk("o"), bulk("n1")]),
        ]);
        let list = Value::Array(vec![entry.clone(), Value::Nil]);
        let got = entries(&list);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq, 17);
        assert_eq!(got[0].field(b"f"), Some(&b"data: x\n\n"[..]));
        assert_eq!(got[0].field(b"x"), None);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("p:bcast"), list.clone()])]);
        let resp3 = Value::Map(vec![(bulk("p:bcast"), list)]);
        for reply in [resp2, resp3] {
            let streams = xread(&reply);
            assert_eq!(streams.len(), 1);
            assert_eq!(streams[0].0, b"p:bcast");
            assert_eq!(streams[0].1[0].seq, 17);
        }
        assert!(xread(&Value::Nil).is_empty());
        assert_eq!(seq_of(b"12-0"), Some(12));
        assert_eq!(seq_of(b"x-0"), None);
        assert_eq!(int(&bulk("42")), Some(42));
    }
}
