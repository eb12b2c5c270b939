//! [`Position`]: where a tab is, read from an event id on the wire, independently of how
//! `sse-proto` spells or parses it.

/// A place in the event log: `<epoch>.<seq>`, and on a store with several shards one
/// `.<shard><seq>` more for each other shard the tab reads (the shard one base-36 digit).
/// Two places of one epoch are ordered shard by shard: one is past another when it is at or
/// past it on every shard and past it on one; of two epochs, the later one is past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The epoch.
    pub epoch: u64,
    /// The number on shard 0.
    pub seq: u64,
    /// The numbers on other shards, by shard.
    pub others: Vec<(u8, u64)>,
}

impl Position {
    /// The position in `event_id` if it is `<id>~<epoch>.<seq>[.<shard><seq>]…`.
    pub fn parse(id: &str, event_id: &str) -> Option<Position> {
        event_id.rsplit_once('~').and_then(|(session, pos)| {
            let mut parts = pos.split('.');
            let mut at = Position {
                epoch: base36(parts.next()?)?,
                seq: base36(parts.next()?)?,
                others: Vec::new(),
            };
            for part in parts {
                let shard = u8::try_from(base36(part.get(..1)?)?).ok()?;
                at.others.push((shard, base36(part.get(1..)?)?));
            }
            (session == id).then_some(at)
        })
    }

    /// How many shards it names, shard 0 included.
    pub fn shards(&self) -> usize {
        1 + self.others.len()
    }

    fn on(&self, shard: u8) -> u64 {
        if shard == 0 {
            return self.seq;
        }
        self.others
            .iter()
            .find(|(s, _)| *s == shard)
            .map_or(0, |(_, n)| *n)
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Position) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        if self.epoch != other.epoch {
            return Some(self.epoch.cmp(&other.epoch));
        }
        let shards = [0]
            .into_iter()
            .chain(self.others.iter().chain(&other.others).map(|(s, _)| *s));
        let (mut less, mut greater) = (false, false);
        for shard in shards {
            match self.on(shard).cmp(&other.on(shard)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (true, true) => None,
        }
    }
}

/// Checks that `got` is `want`, events of several logs in the order they were sent; on a
/// deployment with several shards (`sharded`), order holds per log (a session's own sends,
/// a topic, a user, the broadcasts), so there each of `logs` must come in its order,
/// interleaved in any way, with nothing else.
pub fn in_log_order<T, W>(sharded: bool, got: &[T], want: &[W], logs: &[&[W]])
where
    T: PartialEq<W> + Ord + Clone + std::fmt::Debug,
    W: Ord + Clone + std::fmt::Debug,
{
    if !sharded {
        assert!(
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g == w),
            "got {got:?}, want {want:?}"
        );
        return;
    }
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for w in want {
        assert!(got.iter().any(|g| g == w), "{w:?} missing from {got:?}");
    }
    for log in logs {
        let order: Vec<&T> = got.iter().filter(|g| log.iter().any(|w| *g == w)).collect();
        let in_order = order.len() == log.len() && order.iter().zip(*log).all(|(g, w)| *g == w);
        assert!(in_order, "{log:?} out of order in {got:?}");
    }
}

/// Lowercase base 36 digits, as the wire spells a position's parts.
fn base36(digits: &str) -> Option<u64> {
    let lowercase = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if digits.is_empty() || !lowercase {
        return None;
    }
    u64::from_str_radix(digits, 36).ok()
}

/// `n` in lowercase base 36, to forge positions.
pub fn to_base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_ordered_shard_by_shard() {
        let at = |raw: &str| Position::parse("a", &format!("a~{raw}")).unwrap();
        assert!(at("1.5") > at("1.4"));
        assert!(at("1.5.2a") > at("1.5"));
        assert!(at("1.5.2a") > at("1.4.2a"));
        assert_eq!(at("1.5.2a").partial_cmp(&at("1.6.29")), None);
        assert!(at("2.0") > at("1.z"));
        assert_eq!(at("1.5.2a").shards(), 2);
        assert_eq!(to_base36(36 * 36), "100");
        assert_eq!(Position::parse("b", "a~1.5"), None);
        assert_eq!(Position::parse("a", "a~1.5.2"), None);
        assert_eq!(Position::parse("a", "a~1.5.A1"), None);
    }
}
