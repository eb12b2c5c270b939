use bytes::Buf;

use super::*;
use crate::event::Event;

fn id(s: &str) -> SessionId {
    SessionId::parse(s.as_bytes(), 128).expect("valid")
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("valid")
}

fn frame(text: &str) -> Frame {
    Event::new().data(text.to_owned()).encode()
}

fn seqs(log: &MemoryHistory, who: &str, after: u64) -> Result<Vec<u64>, GapReason> {
    let mut out = Vec::new();
    let after = Cursor::new(log.epoch(), after);
    let gaps = log.replay(&Scope::session(&id(who)), &after, &mut out)?;
    assert!(gaps.is_empty());
    Ok(out.iter().map(|e| e.seq).collect())
}

/// Replays `scope` after `after`: the sequence numbers, and the topics with a gap.
fn replay(
    log: &MemoryHistory,
    scope: &Scope<'_>,
    after: u64,
) -> Result<(Vec<u64>, Vec<&'static str>), GapReason> {
    let mut out = Vec::new();
    let gaps = log.replay(scope, &Cursor::new(log.epoch(), after), &mut out)?;
    let gaps = gaps
        .iter()
        .map(|t| &*String::leak(t.as_str().to_owned()))
        .collect();
    Ok((out.iter().map(|e| e.seq).collect(), gaps))
}

fn member(name: &str, joined: u64, left: Option<u64>) -> Membership {
    Membership {
        topic: topic(name),
        joined,
        left,
    }
}

#[test]
fn merges_broadcasts_and_own_events_in_order() {
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
    let (a, b) = (id("a"), id("b"));
    log.append(Target::All, &frame("1"));
    log.append(Target::Session(&a), &frame("2"));
    log.append(Target::Session(&b), &frame("3"));
    log.append(Target::All, &frame("4"));
    log.append(Target::Session(&a), &frame("5"));
    assert_eq!(seqs(&log, "a", 0), Ok(vec![1, 2, 4, 5]));
    assert_eq!(seqs(&log, "a", 2), Ok(vec![4, 5]));
    assert_eq!(seqs(&log, "b", 1), Ok(vec![3, 4]));
    assert_eq!(seqs(&log, "c", 3), Ok(vec![4]));
    assert_eq!(seqs(&log, "a", 5), Ok(vec![]));
    assert_eq!(seqs(&log, "a", 6), Err(GapReason::InvalidPosition));
    assert_eq!(log.usage().events, 5);
    log.rename(&a, &id("a2"));
    assert_eq!(seqs(&log, "a2", 2), Ok(vec![4, 5]));
    assert_eq!(seqs(&log, "a", 2), Ok(vec![4]));
    log.forget(Target::Session(&id("a2")));
    assert_eq!(log.usage().events, 3);
    assert_eq!(log.usage().sessions, 1);
}

#[test]
fn count_and_byte_bounds_turn_into_gaps() {
    let bounds = LogBounds {
        max_events: 3,
        max_bytes: 1000,
    };
    let mut log = MemoryHistory::new(1, bounds, usize::MAX);
    let a = id("a");
    for i in 0..5 {
        log.append(Target::Session(&a), &frame(&i.to_string()));
    }
    // Kept: 3, 4, 5. From 1 the log cannot say what 2 was.
    assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "a", 2), Ok(vec![3, 4, 5]));
    // Three own events plus broadcasts exceed the bound for one reconnect.
    log.append(Target::All, &frame("b"));
    assert_eq!(seqs(&log, "a", 2), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "a", 3), Ok(vec![4, 5, 6]));
    // One event over the byte bound is never kept: everyone before it has a gap.
    let big = Event::new().data("x".repeat(2000)).encode();
    log.append(Target::All, &big);
    assert_eq!(seqs(&log, "a", 6), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "a", 7), Ok(vec![]));
}

#[test]
fn the_total_cap_evicts_own_events_then_broadcasts() {
    let one = frame("0123456789").remaining(); // every frame here has this size
    let mut log = MemoryHistory::new(1, LogBounds::default(), 3 * one);
    let (a, b) = (id("a"), id("b"));
    log.append(Target::All, &frame("0123456789"));
    log.append(Target::Session(&a), &frame("0123456789"));
    log.append(Target::Session(&b), &frame("0123456789"));
    assert_eq!(log.usage().bytes, 3 * one);
    // Over the cap: a's own oldest goes first.
    log.append(Target::Session(&a), &frame("0123456789"));
    assert_eq!(log.usage().bytes, 3 * one);
    assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "b", 0), Ok(vec![1, 3]));
    // b has nothing of its own to give up but the new one... its own oldest, then.
    log.append(Target::Session(&b), &frame("0123456789"));
    assert_eq!(seqs(&log, "b", 0), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "b", 3), Ok(vec![5]));
    assert_eq!(log.usage().bytes, 3 * one);
    // A broadcast over the cap evicts the oldest broadcast.
    log.append(Target::All, &frame("0123456789"));
    assert_eq!(log.usage().bytes, 3 * one);
    assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "a", 2), Ok(vec![4, 6]));
    assert_eq!(seqs(&log, "c", 0), Err(GapReason::Overflow));
}

#[test]
fn relayed_sequence_numbers_and_gaps() {
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
    let a = id("a");
    assert!(log.append_at(Target::All, 10, &frame("10")));
    assert!(log.append_at(Target::Session(&a), 14, &frame("14")));
    assert!(
        !log.append_at(Target::Session(&a), 14, &frame("again")),
        "seen before"
    );
    assert!(!log.append_at(Target::All, 3, &frame("old")));
    assert_eq!(log.head(0), 14);
    assert_eq!(seqs(&log, "a", 9), Ok(vec![10, 14]));
    // Delivered without a log entry: whoever was at 14 or before missed it.
    log.gap(Target::Session(&a));
    assert_eq!(seqs(&log, "a", 14), Err(GapReason::Overflow));
    assert_eq!(seqs(&log, "b", 14), Ok(vec![]));
    assert!(log.append_at(Target::Session(&a), 20, &frame("20")));
    assert_eq!(seqs(&log, "a", 20), Ok(vec![]));
    assert_eq!(log.append(Target::All, &frame("21")), 21);
}

#[test]
fn one_broadcast_for_many_sessions_is_one_entry() {
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    log.append(Target::All, &Event::new().data(payload).encode());
    for i in 0..1000 {
        assert_eq!(seqs(&log, &format!("s{i}"), 0), Ok(vec![1]));
    }
    assert_eq!(log.usage().events, 1);
    assert_eq!(log.usage().sessions, 0);
}

#[test]
fn topics_replay_within_each_stretch_of_membership() {
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
    let a = id("a");
    let (red, blue) = (topic("red"), topic("blue"));
    log.append(Target::Topic(&red), &frame("1")); // before a joined red
    log.append(Target::Topic(&red), &frame("2"));
    log.append(Target::Session(&a), &frame("3"));
    log.append(Target::Topic(&blue), &frame("4"));
    log.append(Target::Topic(&red), &frame("5"));
    log.append(Target::All, &frame("6"));
    log.append(Target::Topic(&red), &frame("7")); // after a left red
    log.append(Target::Topic(&blue), &frame("8"));
    // a joined red at 1 and left after 5; joined blue at 3 and is still in it.
    let topics = [member("red", 1, Some(5)), member("blue", 3, None)];
    let scope = Scope {
        session: &a,
        user: None,
        topics: &topics,
    };
    assert_eq!(
        replay(&log, &scope, 0),
        Ok((vec![2, 3, 4, 5, 6, 8], vec![]))
    );
    assert_eq!(replay(&log, &scope, 4), Ok((vec![5, 6, 8], vec![])));
    assert_eq!(replay(&log, &scope, 5), Ok((vec![6, 8], vec![])));
    // Joined red again at 6: 7 is in again.
    let topics = [
        member("red", 1, Some(5)),
        member("blue", 3, None),
        member("red", 6, None),
    ];
    let scope = Scope {
        topics: &topics,
        ..scope
    };
    assert_eq!(
        replay(&log, &scope, 0),
        Ok((vec![2, 3, 4, 5, 6, 7, 8], vec![]))
    );
    assert_eq!(log.usage().groups, 2);
    log.forget(Target::Topic(&red));
    assert_eq!(replay(&log, &scope, 0), Ok((vec![3, 4, 6, 8], vec![])));
    assert_eq!(log.usage().groups, 1);
}

#[test]
fn a_topic_that_lost_events_is_a_gap_of_its_own() {
    let bounds = LogBounds {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let mut log = MemoryHistory::new(1, bounds, usize::MAX);
    let a = id("a");
    let (red, blue) = (topic("red"), topic("blue"));
    log.append(Target::Topic(&blue), &frame("1"));
    for i in 2..=5 {
        log.append(Target::Topic(&red), &frame(&i.to_string())); // 2 is evicted
    }
    log.append(Target::Session(&a), &frame("6"));
    let topics = [member("red", 0, None), member("blue", 0, None)];
    let scope = Scope {
        session: &a,
        user: None,
        topics: &topics,
    };
    // red lost 2: red is reported and left out, blue and a's own replay.
    assert_eq!(replay(&log, &scope, 0), Ok((vec![1, 6], vec!["red"])));
    // From 2 on red is exact.
    assert_eq!(replay(&log, &scope, 3), Ok((vec![4, 5, 6], vec![])));
    // A stretch whose last red event (2) was evicted has a gap; after it, none.
    let topics = [member("red", 0, Some(2)), member("blue", 0, None)];
    let scope = Scope {
        topics: &topics,
        ..scope
    };
    assert_eq!(replay(&log, &scope, 0), Ok((vec![1, 6], vec!["red"])));
    assert_eq!(replay(&log, &scope, 2), Ok((vec![6], vec![])));
    // The session's own log is not a topic: its loss is a gap for the whole session.
    for i in 7..=9 {
        log.append(Target::Session(&a), &frame(&i.to_string()));
    }
    assert_eq!(replay(&log, &scope, 2), Err(GapReason::Overflow));
}

#[test]
fn a_users_events_count_from_when_the_session_became_theirs() {
    let bounds = LogBounds {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let mut log = MemoryHistory::new(1, bounds, usize::MAX);
    let a = id("a");
    let (ann, bob) = (Principal::new("ann"), Principal::new("bob"));
    log.append(Target::User(&ann), &frame("1"));
    log.append(Target::User(&bob), &frame("2"));
    log.append(Target::User(&ann), &frame("3"));
    let scope = Scope {
        session: &a,
        user: Some((&ann, 1)),
        topics: &[],
    };
    assert_eq!(replay(&log, &scope, 0), Ok((vec![3], vec![])));
    for i in 4..=6 {
        log.append(Target::User(&ann), &frame(&i.to_string()));
    }
    // ann's log lost 3: a gap for the session, not a topic's.
    assert_eq!(replay(&log, &scope, 2), Err(GapReason::Overflow));
    assert_eq!(replay(&log, &scope, 3), Ok((vec![4, 5, 6], vec![])));
}

#[test]
fn the_replay_bound_counts_every_log() {
    let bounds = LogBounds {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let mut log = MemoryHistory::new(1, bounds, usize::MAX);
    let a = id("a");
    let (red, blue) = (topic("red"), topic("blue"));
    log.append(Target::Topic(&red), &frame("1"));
    log.append(Target::Topic(&blue), &frame("2"));
    log.append(Target::Topic(&red), &frame("3"));
    log.append(Target::Topic(&blue), &frame("4"));
    let topics = [member("red", 0, None), member("blue", 0, None)];
    let scope = Scope {
        session: &a,
        user: None,
        topics: &topics,
    };
    assert_eq!(replay(&log, &scope, 0), Err(GapReason::Overflow));
    assert_eq!(replay(&log, &scope, 1), Ok((vec![2, 3, 4], vec![])));
}

#[test]
fn a_publish_to_many_members_is_one_entry() {
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
    let room = topic("room");
    log.append(Target::Topic(&room), &frame("hello"));
    let topics = [member("room", 0, None)];
    for i in 0..1000 {
        let s = id(&format!("s{i}"));
        let scope = Scope {
            session: &s,
            user: None,
            topics: &topics,
        };
        assert_eq!(replay(&log, &scope, 0), Ok((vec![1], vec![])));
    }
    assert_eq!(log.usage().events, 1);
    assert_eq!(log.usage().groups, 1);
}

#[test]
fn a_lost_shard_drops_its_logs_and_gaps_replays_from_before() {
    let placement = crate::Placement::new(4).expect("4");
    let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX).placed(placement);
    // A topic on shard 2 and one elsewhere.
    let on = |shard: u8| {
        (0..)
            .map(|n| topic(&format!("t{n}")))
            .find(|t| placement.of(Target::Topic(t)) == shard)
            .expect("a name lands on every shard")
    };
    let (lost, kept) = (on(2), on(3));
    for _ in 0..3 {
        log.append(Target::Topic(&lost), &frame("x"));
        log.append(Target::Topic(&kept), &frame("y"));
    }
    assert_eq!(log.usage().events, 6);
    log.lose_shard(2, 10);
    assert_eq!(log.head(2), 10);
    assert_eq!(log.usage().events, 3, "shard 2's entries are gone");
    assert_eq!(log.append(Target::Topic(&lost), &frame("z")), 11);
    let topics = [
        member(lost.as_str(), 0, None),
        member(kept.as_str(), 0, None),
    ];
    let scope = Scope {
        session: &id("tab"),
        user: None,
        topics: &topics,
    };
    let mut from = Cursor::new(1, 0);
    from.set(2, 1).expect("room");
    from.set(3, 1).expect("room");
    let mut out = Vec::new();
    let gaps = log
        .replay(&scope, &from, &mut out)
        .expect("the rest replays");
    assert_eq!(gaps, std::slice::from_ref(&lost));
    assert_eq!(
        out.iter().map(|e| (e.shard, e.seq)).collect::<Vec<_>>(),
        [(3, 2), (3, 3)]
    );
    // From after the loss: exact again.
    from.set(2, 10).expect("named");
    out.clear();
    assert!(
        log.replay(&scope, &from, &mut out)
            .expect("exact")
            .is_empty()
    );
    // Merged by number, which keeps each shard's order.
    let got: Vec<(u8, u64)> = out.iter().map(|e| (e.shard, e.seq)).collect();
    assert_eq!(got, [(3, 2), (3, 3), (2, 11)]);
}
