//! [`Placement`]: which shard of a sharded store keeps each log.

use crate::cursor::MAX_SHARDS;
use crate::history::Target;

/// Where a sharded store keeps each log: the broadcasts on shard 0, and the log of a
/// session, a topic or a user on the shard its name hashes to. Every node and the store
/// place alike, so that a tab's cursor means the same everywhere.
///
/// The hash is FNV-1a (64 bits) of the name's bytes, taken modulo the number of shards: it
/// never changes, so neither does a name's shard while the number of shards stays.
///
/// ```
/// use sse_proto::{Placement, Target, TopicName};
///
/// let four = Placement::new(4).unwrap();
/// assert_eq!(four.of(Target::All), 0);
/// let room = TopicName::new("room").unwrap();
/// assert!(four.of(Target::Topic(&room)) < 4);
/// assert_eq!(Placement::ONE.of(Target::Topic(&room)), 0);
/// assert!(Placement::new(0).is_none() && Placement::new(37).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    shards: u8,
}

impl Default for Placement {
    fn default() -> Self {
        Placement::ONE
    }
}

impl Placement {
    /// One shard: every log on shard 0, as a store with one sequence keeps them.
    pub const ONE: Placement = Placement { shards: 1 };

    /// `shards` shards, 1 to [`MAX_SHARDS`].
    pub fn new(shards: usize) -> Option<Placement> {
        // At most 36.
        let count = u8::try_from(shards).ok()?;
        (1..=MAX_SHARDS)
            .contains(&shards)
            .then_some(Placement { shards: count })
    }

    /// How many shards.
    pub fn shards(&self) -> usize {
        usize::from(self.shards)
    }

    /// The shard that holds the log of `target`.
    pub fn of(&self, target: Target<'_>) -> u8 {
        match target {
            Target::All => 0,
            Target::Session(id) => self.of_name(id.as_bytes()),
            Target::Topic(t) => self.of_name(t.as_str().as_bytes()),
            Target::User(u) => self.of_name(u.as_bytes()),
        }
    }

    /// The shard of the log named `name`: a session id's bytes, a topic's name or a
    /// principal's bytes, as [`of`](Self::of) hashes them. A store that keeps its keys by
    /// name (without the typed target at hand) places with this.
    ///
    /// ```
    /// use sse_proto::{Placement, Target, TopicName};
    ///
    /// let four = Placement::new(4).unwrap();
    /// let room = TopicName::new("room").unwrap();
    /// assert_eq!(four.of_name(b"room"), four.of(Target::Topic(&room)));
    /// ```
    pub fn of_name(&self, name: &[u8]) -> u8 {
        if self.shards == 1 {
            return 0;
        }
        let hash = name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        // Below `shards`, which is at most 36.
        (hash % u64::from(self.shards)) as u8
    }
}
