//! Delivering what a connection has queued to its tab, and checking it against what the
//! model says the tab is owed.

use super::*;

impl Sim {
    pub(crate) fn deliver(&mut self, t: usize, cut: Option<u16>) {
        let Some(mut outlet) = self.tabs[t].outlet.take() else {
            return;
        };
        let c = self.tabs[t].conn.unwrap();
        let (bytes, ended) = drain(&mut outlet, self.now());
        {
            let conn = &mut self.conns[c];
            assert_eq!(
                ended,
                conn.ending.is_some(),
                "the stream of {} ends when, and only when, it was ending (model: {:?})",
                conn.sid,
                conn.ending
            );
            conn.taken = conn.expected.len();
            conn.undrained = false;
            conn.queued = 0;
            conn.preamble_taken = true;
        }
        if ended {
            assert_eq!(
                outlet.end_reason(),
                self.conns[c].ending,
                "end reason of a stream of {}",
                self.conns[c].sid
            );
            self.outlet_ended(c);
        }
        let n = cut.map_or(bytes.len(), |f| bytes.len() * usize::from(f) / 1000);
        self.feed(t, c, &bytes[..n]);
        let conn = &self.conns[c];
        if cut.is_none() {
            assert_eq!(
                conn.received, conn.expected,
                "inv 1: everything queued reached tab {t} on a stream of {}",
                conn.sid
            );
            let attached = self
                .sessions
                .get(&conn.sid)
                .is_some_and(|s| s.inc == conn.inc && s.link == Some(c));
            if conn.is_open() && attached {
                let logged = logged(&conn.received);
                let owed = self.owed_after(&conn.sid, conn.start);
                assert_eq!(
                    logged, owed,
                    "inv 1: an attached, drained connection of {} has exactly the events \
                     owed after its start {}",
                    conn.sid, conn.start
                );
            }
            if ended && conn.replaced {
                let renamed = self.tabs[t].decoder.last_event_id();
                assert!(
                    !renamed.contains('~') && renamed != conn.sid,
                    "inv 6: a replaced stream of {} ends with a fresh bare id, not {renamed:?}",
                    conn.sid
                );
                self.cov.replaced += 1;
            }
        } else {
            self.cov.cut_deliveries += 1;
        }
        if ended || cut.is_some() {
            drop(outlet);
            if !ended {
                self.outlet_ended(c);
            }
            self.tabs[t].decoder.finish();
            self.tabs[t].conn = None;
        } else {
            self.tabs[t].outlet = Some(outlet);
        }
    }

    pub(crate) fn owed_after(&self, sid: &str, start: u64) -> Vec<u64> {
        self.owed
            .get(sid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&s| s > start)
            .collect()
    }

    /// Feeds `bytes` of connection `c` to tab `t`, and checks what it dispatched.
    pub(crate) fn feed(&mut self, t: usize, c: usize, bytes: &[u8]) {
        let owed = self.owed_after(&self.conns[c].sid, self.conns[c].start);
        let tab = &mut self.tabs[t];
        let conn = &mut self.conns[c];
        tab.decoder
            .feed(bytes)
            .expect("the hub writes well-formed streams");
        conn.fed.extend_from_slice(bytes);
        if !conn.preamble_seen {
            if let Some(end) = conn.fed.windows(2).position(|w| w == b"\n\n") {
                let text = std::str::from_utf8(&conn.fed[..end]).unwrap();
                let (retry, id) = text.split_once('\n').unwrap();
                assert!(retry.starts_with("retry: "), "preamble: {text:?}");
                let preamble = id.strip_prefix("id: ").unwrap();
                let (sid, pos) = preamble
                    .rsplit_once('~')
                    .expect("a position in the preamble");
                assert_eq!(sid, conn.sid, "the preamble's session id");
                let (epoch, start) = pos
                    .split_once('.')
                    .and_then(|(e, s)| Some((parse_b36(e)?, parse_b36(s)?)))
                    .expect("a well-formed position in the preamble");
                let epoch = *self.epoch.get_or_insert(epoch);
                assert_eq!(
                    preamble,
                    token(&conn.sid, epoch, conn.start),
                    "inv 1: the preamble starts where the model says (epoch {epoch})"
                );
                if let Some(Claimed::At {
                    epoch: claimed_epoch,
                    seq,
                }) = conn.claimed
                {
                    if conn.continuity.is_resumed() {
                        assert_eq!(start, seq, "inv 1: Resumed starts at the claimed position");
                    }
                    if claimed_epoch == epoch && seq < start {
                        assert!(
                            matches!(conn.continuity, Continuity::Gap(_)),
                            "inv 1: a claim ({seq}) older than the start ({start}) is a gap, \
                             not {:?}",
                            conn.continuity
                        );
                    }
                }
                conn.preamble_seen = true;
                conn.last_id = preamble.to_owned();
                // Exact now that the epoch is known (the first connection's was a guess).
                conn.id_line = conn.id_line.map(|_| "id: \n".len() + preamble.len());
                tab.remember(preamble);
            }
        }
        let epoch = self.epoch.unwrap_or_default();
        while let Some(item) = tab.decoder.poll_item() {
            let Item::Event(event) = item else { continue };
            assert!(
                conn.preamble_seen,
                "an event before the preamble: {event:?}"
            );
            let got = if let Some(n) = event.data.strip_prefix('e') {
                let seq: u64 = n.parse().unwrap();
                assert_eq!(
                    event.last_event_id,
                    token(&conn.sid, epoch, seq),
                    "a logged event carries its session and its own position (model seq {seq})"
                );
                conn.last_id.clone_from(&event.last_event_id);
                Got::Logged(seq)
            } else if let Some(n) = event.data.strip_prefix('v') {
                assert_eq!(
                    event.last_event_id, conn.last_id,
                    "a volatile event moves no position"
                );
                Got::Volatile(n.parse().unwrap())
            } else {
                panic!("an event nobody sent: {event:?}")
            };
            conn.received.push(got);
            tab.remember(&event.last_event_id);
        }
        let last = tab.decoder.last_event_id().to_owned();
        tab.remember(&last);
        let k = conn.received.len();
        assert!(
            k <= conn.expected.len() && conn.received[..] == conn.expected[..k],
            "inv 1: tab {t} received {:?}, not a prefix of what was queued {:?}",
            conn.received,
            conn.expected
        );
        let logged = logged(&conn.received);
        assert!(
            logged.len() <= owed.len() && logged[..] == owed[..logged.len()],
            "inv 1: the logged events of a stream of {} ({logged:?}) are not in order the \
             events owed after {} ({owed:?})",
            conn.sid,
            conn.start
        );
    }

    pub(crate) fn drop_conn(&mut self, t: usize) {
        if let Some(outlet) = self.tabs[t].outlet.take() {
            drop(outlet);
            let c = self.tabs[t].conn.take().unwrap();
            self.outlet_ended(c);
            self.tabs[t].decoder.finish();
        }
    }
}
