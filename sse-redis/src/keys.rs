//! The names of a deployment's keys, on one shard or several.
//!
//! Every key starts with a hash tag: `{<prefix>}` on shard 0 (the only shard of a deployment
//! that is not sharded, so its keys are what they always were), `{<prefix>#<k>}` on shard
//! `k`. On a Redis Cluster each tag is one slot, so a script may touch any keys of one
//! shard together. A key that belongs to a session, a topic or a user is on the shard
//! [`Placement`] puts its log on; the rest (sequences, inboxes, presence) are per shard.

use sse_proto::Placement;

/// The keys of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The hash tag of each shard.
    tags: Vec<String>,
    placement: Placement,
}

impl Keys {
    /// The keys under `prefix` on `shards` shards; `None` when the prefix is not a valid hash
    /// tag (empty, or with a brace) or the number of shards is not one a cursor can name.
    pub(crate) fn new(prefix: &str, shards: usize) -> Option<Keys> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return None;
        }
        let placement = Placement::new(shards)?;
        let tags = (0..shards)
            .map(|k| match k {
                0 => format!("{{{prefix}}}"),
                k => format!("{{{prefix}#{k}}}"),
            })
            .collect();
        Some(Keys { tags, placement })
    }

    /// Where each log is.
    pub(crate) fn placement(&self) -> Placement {
        self.placement
    }

    /// Every shard.
    pub(crate) fn every(&self) -> impl Iterator<Item = u8> + use<> {
        // At most 36 shards.
        (0..self.tags.len()).map(|k| k as u8)
    }

    /// Whether the deployment has one shard.
    pub(crate) fn single(&self) -> bool {
        self.tags.len() == 1
    }

    fn tag(&self, shard: u8) -> &str {
        self.tags
            .get(usize::from(shard))
            .map_or("{}", String::as_str)
    }

    /// The shard of session `id`'s keys (its home).
    pub(crate) fn of_session(&self, id: &str) -> u8 {
        self.placement.of_name(id.as_bytes())
    }

    /// The sessions `ids`, by the shard of their keys: one pipeline or script per shard.
    pub(crate) fn by_home<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> std::collections::BTreeMap<u8, Vec<&'a str>> {
        let mut by_shard = std::collections::BTreeMap::<u8, Vec<&str>>::new();
        for id in ids {
            by_shard.entry(self.of_session(id)).or_default().push(id);
        }
        by_shard
    }

    /// The shard of `topic`'s keys.
    pub(crate) fn of_topic(&self, topic: &str) -> u8 {
        self.placement.of_name(topic.as_bytes())
    }

    /// The shard of the keys of the user spelled `hex` in keys (0 for none).
    pub(crate) fn of_user(&self, hex: &str) -> u8 {
        if self.single() || hex.is_empty() {
            return 0;
        }
        crate::groups::user_of(hex.as_bytes()).map_or(0, |u| self.placement.of_name(u.as_bytes()))
    }

    pub(crate) fn epoch(&self, shard: u8) -> String {
        format!("{}epoch", self.tag(shard))
    }
    pub(crate) fn from(&self, shard: u8) -> String {
        format!("{}from", self.tag(shard))
    }
    pub(crate) fn seq(&self, shard: u8) -> String {
        format!("{}seq", self.tag(shard))
    }
    /// How many shards the deployment has (on shard 0).
    pub(crate) fn shards(&self) -> String {
        format!("{}shards", self.tag(0))
    }
    pub(crate) fn bcast(&self) -> String {
        format!("{}bcast", self.tag(0))
    }
    pub(crate) fn live(&self, shard: u8, node: &str) -> String {
        format!("{}live:{node}", self.tag(shard))
    }
    pub(crate) fn nodes(&self, shard: u8) -> String {
        format!("{}nodes", self.tag(shard))
    }
    pub(crate) fn all(&self, shard: u8) -> String {
        format!("{}all", self.tag(shard))
    }
    pub(crate) fn node(&self, shard: u8, node: &str) -> String {
        format!("{}node:{node}", self.tag(shard))
    }
    pub(crate) fn done(&self, shard: u8, mid: &str) -> String {
        format!("{}done:{mid}", self.tag(shard))
    }
    pub(crate) fn presence(&self, shard: u8) -> String {
        format!("{}presence", self.tag(shard))
    }
    pub(crate) fn alive(&self, shard: u8, node: &str) -> String {
        format!("{}alive:{node}", self.tag(shard))
    }
    /// Session `id`'s memberships in the topics on `shard` (and, on its home shard, its user
    /// and the other shards it has memberships on).
    pub(crate) fn mem(&self, shard: u8, id: &str) -> String {
        format!("{}mem:{id}", self.tag(shard))
    }
    /// Session `id`'s mem on its home shard.
    pub(crate) fn home_mem(&self, id: &str) -> String {
        self.mem(self.of_session(id), id)
    }
    pub(crate) fn log(&self, id: &str) -> String {
        format!("{}log:{id}", self.tag(self.of_session(id)))
    }
    pub(crate) fn owner(&self, id: &str) -> String {
        format!("{}owner:{id}", self.tag(self.of_session(id)))
    }
    pub(crate) fn closed(&self, id: &str) -> String {
        format!("{}closed:{id}", self.tag(self.of_session(id)))
    }
    pub(crate) fn tlog(&self, topic: &str) -> String {
        format!("{}tlog:{topic}", self.tag(self.of_topic(topic)))
    }
    pub(crate) fn tn(&self, topic: &str) -> String {
        format!("{}tn:{topic}", self.tag(self.of_topic(topic)))
    }
    pub(crate) fn tm(&self, topic: &str) -> String {
        format!("{}tm:{topic}", self.tag(self.of_topic(topic)))
    }
    pub(crate) fn ulog(&self, user: &str) -> String {
        format!("{}ulog:{user}", self.tag(self.of_user(user)))
    }
    pub(crate) fn us(&self, user: &str) -> String {
        format!("{}us:{user}", self.tag(self.of_user(user)))
    }
    pub(crate) fn un(&self, user: &str) -> String {
        format!("{}un:{user}", self.tag(self.of_user(user)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_keeps_the_old_names_and_more_shards_have_tags_of_their_own() {
        let one = Keys::new("sse:", 1).unwrap();
        assert_eq!(one.seq(0), "{sse:}seq");
        assert_eq!(one.owner("a"), "{sse:}owner:a");
        assert_eq!(one.tlog("red"), "{sse:}tlog:red");
        let four = Keys::new("sse:", 4).unwrap();
        assert_eq!(four.seq(0), "{sse:}seq");
        assert_eq!(four.seq(3), "{sse:#3}seq");
        let k = four.of_topic("red");
        assert_eq!(four.tm("red"), four.mem(k, "x").replace("mem:x", "tm:red"));
        assert!(Keys::new("", 1).is_none());
        assert!(Keys::new("a{b", 1).is_none());
        assert!(Keys::new("sse:", 0).is_none());
        assert!(Keys::new("sse:", 37).is_none());
    }
}
