//! Sends, broadcasts, closes, time and duplicated tabs, each against the model.

use super::*;

impl Sim {
    /// Logs the next event for `sid` in the model.
    pub(crate) fn log_for(&mut self, sid: &str) {
        self.head += 1;
        let seq = self.head;
        self.owed.entry(sid.to_owned()).or_default().push(seq);
        self.queue_logged(sid, seq);
    }

    /// Whether the open connection `c` takes `len` more bytes; past its budget it is cut off.
    pub(crate) fn admits(&self, c: usize, len: usize) -> bool {
        let queued = self.conns[c].queued;
        queued == 0 || queued + len <= self.budget
    }

    /// Queues logged event `seq` on the open connection of `sid`, if any.
    pub(crate) fn queue_logged(&mut self, sid: &str, seq: u64) {
        let Some(c) = self.sessions.get(sid).and_then(|s| s.link) else {
            return;
        };
        if !self.conns[c].is_open() {
            return;
        }
        let len = logged_len(sid, self.epoch.unwrap_or_default(), seq);
        if !self.admits(c, len) {
            self.cut(c);
            return;
        }
        let conn = &mut self.conns[c];
        conn.queued += len;
        conn.id_line = None;
        conn.push(Got::Logged(seq));
    }

    /// Queues volatile event `k` on the open connection `c`, which admits it.
    pub(crate) fn queue_volatile(&mut self, c: usize, k: u64) {
        let conn = &mut self.conns[c];
        conn.queued += conn.id_line.take().unwrap_or(0) + data_len(&format!("v{k}"));
        conn.push(Got::Volatile(k));
    }

    /// Connection `c` went over its budget: it ends at once, what it had queued is dropped,
    /// and its session waits for the tab to come back.
    pub(crate) fn cut(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        conn.ending = Some(EndReason::TooSlow);
        conn.expected.truncate(conn.taken);
        conn.undrained = false;
        conn.queued = 0;
        if !conn.preamble_taken {
            conn.preamble_seen = true;
        }
        let session = self.sessions.get_mut(&conn.sid).unwrap();
        session.link = None;
        session.detached_at = Some(self.now_ms);
        self.cov.cut_off += 1;
    }

    /// What a send to the current incarnation of `sid` gets.
    pub(crate) fn send_result(&self, sid: &str) -> Result<(), Error> {
        match self.sessions.get(sid).map(|s| s.life) {
            None => Err(Error::NotConnected),
            Some(Life::Live) => Ok(()),
            Some(Life::Closing) => Err(Error::Closed),
        }
    }

    /// Whether a handle of incarnation `inc` of `sid` is the live session.
    pub(crate) fn is_current(&self, sid: &str, inc: u64) -> bool {
        self.sessions
            .get(sid)
            .is_some_and(|s| s.inc == inc && s.life == Life::Live)
    }

    pub(crate) fn send(&mut self, t: usize, via: Via) {
        let seq = self.head + 1;
        let event = Event::new().data(format!("e{seq}"));
        let (sid, got, want) = match via {
            Via::Handle => {
                let Some((session, inc)) = &self.tabs[t].handle else {
                    return;
                };
                let sid = session.id().as_str().to_owned();
                let want = if self.is_current(&sid, *inc) {
                    Ok(())
                } else {
                    Err(Error::Closed)
                };
                (sid, session.send(format!("e{seq}")), want)
            }
            Via::Hub | Via::HubSeen(_) => {
                let sid = match via {
                    Via::HubSeen(i) => {
                        let seen = &self.tabs[t].seen;
                        if seen.is_empty() {
                            return;
                        }
                        let id = &seen[i % seen.len()];
                        id.rsplit_once('~')
                            .map_or(id.as_str(), |(s, _)| s)
                            .to_owned()
                    }
                    _ => match &self.tabs[t].sid {
                        Some(sid) => sid.clone(),
                        None => return,
                    },
                };
                let want = self.send_result(&sid);
                (sid.clone(), self.hub.send_to(&sid, &event), want)
            }
        };
        assert_eq!(
            got,
            want,
            "inv 5: a send to {sid} by {via:?} (model: {:?})",
            self.sessions.get(&sid)
        );
        if got == Err(Error::NotConnected) {
            self.cov.not_connected += 1;
        }
        if want.is_ok() {
            self.log_for(&sid);
        }
    }

    pub(crate) fn broadcast(&mut self) {
        let seq = self.head + 1;
        let took = self.hub.broadcast(&Event::new().data(format!("e{seq}")));
        let live: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.life == Life::Live)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            took,
            live.len(),
            "inv 5: a broadcast counts every live session, attached or detached: {live:?}"
        );
        self.head += 1;
        for sid in live {
            self.owed.entry(sid.clone()).or_default().push(seq);
            self.queue_logged(&sid, seq);
        }
    }

    pub(crate) fn volatile(&mut self, t: usize) {
        let Some((session, inc)) = &self.tabs[t].handle else {
            return;
        };
        self.volatiles += 1;
        let k = self.volatiles;
        let sid = session.id().as_str().to_owned();
        let link = self.sessions.get(&sid).and_then(|s| s.link);
        let len = data_len(&format!("v{k}"));
        let want = match link {
            _ if !self.is_current(&sid, *inc) => Err(Error::Closed),
            Some(c) if self.conns[c].is_open() && self.admits(c, len) => Ok(()),
            Some(c) if self.conns[c].is_open() => Err(Error::Backpressure {
                queued: self.conns[c].queued,
                budget: self.budget,
            }),
            Some(_) => Err(Error::Closed),
            None => Err(Error::NotConnected),
        };
        let got = session.send_volatile(&Event::new().data(format!("v{k}")));
        assert_eq!(got, want, "a volatile send to {sid}");
        match (want, link) {
            (Ok(()), Some(c)) => self.queue_volatile(c, k),
            (Err(Error::Backpressure { .. }), Some(c)) => self.cut(c),
            _ => {}
        }
    }

    pub(crate) fn broadcast_volatile(&mut self) {
        self.volatiles += 1;
        let k = self.volatiles;
        let took = self
            .hub
            .broadcast_volatile(&Event::new().data(format!("v{k}")));
        let len = data_len(&format!("v{k}"));
        let (open, slow): (Vec<usize>, Vec<usize>) = self
            .sessions
            .values()
            .filter(|s| s.life == Life::Live)
            .filter_map(|s| s.link)
            .filter(|&c| self.conns[c].is_open())
            .partition(|&c| self.admits(c, len));
        assert_eq!(
            took,
            open.len(),
            "a volatile broadcast counts the open streams that take it"
        );
        for c in open {
            self.queue_volatile(c, k);
        }
        for c in slow {
            self.cut(c);
        }
    }

    pub(crate) fn drop_stream(&mut self, t: usize) {
        let Some((session, inc)) = &self.tabs[t].handle else {
            return;
        };
        let sid = session.id().as_str().to_owned();
        let link = self
            .sessions
            .get(&sid)
            .filter(|s| s.inc == *inc)
            .and_then(|s| s.link)
            .filter(|&c| self.conns[c].is_open());
        assert_eq!(
            session.drop_stream(),
            link.is_some(),
            "disconnect of {sid} begins the end of an open stream"
        );
        if let Some(c) = link {
            self.conns[c].ending = Some(EndReason::Dropped);
        }
    }

    pub(crate) fn close(&mut self, t: usize, via_handle: bool) {
        let (sid, current) = if via_handle {
            let Some((session, inc)) = &self.tabs[t].handle else {
                return;
            };
            let sid = session.id().as_str().to_owned();
            if self.sessions.get(&sid).is_none_or(|s| s.inc != *inc) {
                // A handle to a session that ended: its `close` still marks the id, even when
                // a newer session holds it, so that session's tab gets 204 while it lives on.
                // Left out, so that the model does not depend on it.
                return;
            }
            let current = self.is_current(&sid, *inc);
            assert_eq!(session.close(), current, "close of {sid} by its handle");
            (sid, current)
        } else {
            let Some(sid) = self.tabs[t].sid.clone() else {
                return;
            };
            let want = if self.sessions.contains_key(&sid) {
                Ok(())
            } else {
                Err(Error::NotConnected)
            };
            let got = self.hub.close(&sid);
            assert_eq!(got, want, "inv 5: close of {sid} by id");
            if got.is_err() {
                // An unknown id is not marked.
                return;
            }
            let current = self.sessions[&sid].life == Life::Live;
            (sid, current)
        };
        self.marks.insert(sid.clone());
        if !current {
            return;
        }
        let session = self.sessions.get_mut(&sid).unwrap();
        match session.link {
            Some(c) => {
                session.life = Life::Closing;
                let conn = &mut self.conns[c];
                if conn.is_open() {
                    conn.ending = Some(EndReason::Closed);
                }
            }
            None => {
                self.sessions.remove(&sid);
            }
        }
    }

    pub(crate) fn advance(&mut self, ms: u64, poll: bool) {
        self.now_ms += ms;
        self.clock.set(instant(self.now_ms));
        if !poll {
            return;
        }
        let now = self.now_ms;
        let next = self
            .hub
            .poll_timers(&mut Context::from_waker(Waker::noop()), self.now());
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.detached_at.is_some_and(|at| at + GRACE_MS <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for sid in &expired {
            self.sessions.remove(sid);
            assert!(self.hub.session(sid).is_none(), "{sid} expired at {now} ms");
            self.cov.expired += 1;
        }
        let due = self
            .sessions
            .values()
            .filter_map(|s| s.detached_at)
            .min()
            .map(|at| at + GRACE_MS);
        if let Some(due) = due {
            let next = next.expect("a deadline while a session is detached");
            assert!(
                self.now() < next && next <= instant(due),
                "the next deadline is after now and no later than the earliest ({due} ms)"
            );
        }
    }

    pub(crate) fn duplicate(&mut self, t: usize, query: bool) {
        if self.tabs.len() >= MAX_TABS {
            return;
        }
        let Some(c) = self.tabs[t].conn else { return };
        let copied = self.tabs[t].decoder.last_event_id().to_owned();
        if copied.is_empty() {
            return;
        }
        // The strict check needs the original to hold its session on an open stream.
        let sid = self.conns[c].sid.clone();
        let strict = read_offer(&copied).is_some_and(|(s, _)| s == sid)
            && self.conns[c].is_open()
            && self
                .sessions
                .get(&sid)
                .is_some_and(|s| s.life == Life::Live && s.link == Some(c))
            && !self.marks.contains(&sid);
        let d = self.tabs.len();
        let mut tab = Tab::new();
        tab.remember(&copied);
        self.tabs.push(tab);
        self.connect(d, Some(copied), query);
        if !strict {
            return;
        }
        assert_eq!(
            self.tabs[d].sid.as_deref(),
            Some(sid.as_str()),
            "inv 6: the duplicate takes the session it copied"
        );
        self.deliver(t, None);
        assert!(
            self.tabs[t].outlet.is_none(),
            "inv 6: the original's stream ends once the duplicate connects"
        );
        let renamed = self.tabs[t].decoder.last_event_id().to_owned();
        let continuity = self.connect(t, Some(renamed.clone()), false);
        assert_eq!(
            continuity,
            Some(Continuity::New),
            "inv 6: the original comes back with {renamed:?} as a new session"
        );
        assert_eq!(self.tabs[t].sid.as_deref(), Some(renamed.as_str()));
        assert_ne!(
            self.tabs[t].sid, self.tabs[d].sid,
            "inv 6: the two tabs end up with distinct ids"
        );
        self.cov.renamed_reconnects += 1;
    }

    pub(crate) fn check_stats(&self) {
        let stats = self.hub.stats();
        let attached: BTreeSet<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.link.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let detached = self.sessions.len() - attached.len();
        assert_eq!(
            (stats.attached, stats.detached),
            (attached.len(), detached),
            "inv 7: stats (attached, detached) vs the model {:?}",
            self.sessions
        );
        assert_eq!(self.hub.len(), self.sessions.len(), "inv 7: sessions held");
        let ids: BTreeSet<String> = self.hub.ids().iter().map(ToString::to_string).collect();
        assert_eq!(ids, attached, "inv 7: attached ids");
        for tab in &self.tabs {
            if let Some((session, inc)) = &tab.handle {
                let live = self.is_current(session.id().as_str(), *inc);
                assert_eq!(
                    session.is_closed(),
                    !live,
                    "a handle of {} is open while its session lives",
                    session.id()
                );
                if live {
                    let link = self.sessions[session.id().as_str()].link;
                    assert_eq!(
                        session.queued_bytes(),
                        link.map_or(0, |c| self.conns[c].queued),
                        "bytes queued for {}",
                        session.id()
                    );
                }
            }
        }
    }
}
