//! The simulation's steps: running an operation, and connecting a tab (what the model
//! expects of a request, and the checks of the connection it gets).

use super::*;

impl Sim {
    pub(crate) fn new(bounds: LogBounds, budget: usize) -> Sim {
        let clock = ManualClock::starting_at(instant(0));
        let counter = Arc::new(AtomicU64::new(0));
        let ids = move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            SessionId::parse(format!("s{n}").as_bytes(), 128).unwrap()
        };
        // What each tab gets, not when: writers are woken at once (no write window).
        let hub = Hub::builder()
            .keep_alive(None)
            .write_window(sse_proto::WriteWindow::Off)
            .retry(Duration::from_millis(RETRY_MS))
            .budget(budget)
            .id_generator(ids)
            .resume(ResumeConfig::new(Duration::from_millis(GRACE_MS)).bounds(bounds))
            .build(clock.clone());
        let mut sim = Sim {
            hub,
            clock,
            bounds,
            budget,
            now_ms: 0,
            head: 0,
            epoch: None,
            incs: 0,
            sessions: BTreeMap::new(),
            owed: HashMap::new(),
            marks: BTreeSet::new(),
            conns: Vec::new(),
            tabs: (0..TABS).map(|_| Tab::new()).collect(),
            volatiles: 0,
            cov: Coverage::default(),
        };
        // The first tab opens the page; its preamble tells the epoch.
        sim.connect(0, None, false);
        sim.deliver(0, None);
        assert!(sim.epoch.is_some(), "the first preamble gives the epoch");
        sim
    }

    pub(crate) fn now(&self) -> Instant {
        instant(self.now_ms)
    }

    pub(crate) fn run(&mut self, op: &Op) {
        match *op {
            Op::Connect {
                tab,
                ref how,
                query,
            } => {
                let t = tab % self.tabs.len();
                let value = self.offer_for(t, how);
                self.connect(t, value, query);
            }
            Op::Deliver { tab, cut } => self.deliver(tab % self.tabs.len(), cut),
            Op::Drop { tab } => self.drop_conn(tab % self.tabs.len()),
            Op::Send { tab, via } => self.send(tab % self.tabs.len(), via),
            Op::Broadcast => self.broadcast(),
            Op::Volatile { tab } => self.volatile(tab % self.tabs.len()),
            Op::BroadcastVolatile => self.broadcast_volatile(),
            Op::DropStream { tab } => self.drop_stream(tab % self.tabs.len()),
            Op::Close { tab, via_handle } => self.close(tab % self.tabs.len(), via_handle),
            Op::Advance { ms, poll } => self.advance(ms, poll),
            Op::Duplicate { tab, query } => self.duplicate(tab % self.tabs.len(), query),
        }
        self.check_stats();
    }

    /// The event id a tab offers, `None` for none.
    pub(crate) fn offer_for(&self, t: usize, how: &How) -> Option<String> {
        let tab = &self.tabs[t];
        let current = tab.decoder.last_event_id();
        let sid = tab.sid.clone();
        let epoch = self.epoch.unwrap();
        match how {
            How::Fresh => None,
            // A reloaded page that has read nothing yet offers what its tab stored.
            How::Current if current.is_empty() => tab.seen.last().cloned(),
            How::Current => Some(current.to_owned()),
            How::Older(i) => (!tab.seen.is_empty()).then(|| tab.seen[i % tab.seen.len()].clone()),
            How::Bare => sid,
            How::Forged(forge) => sid.map(|sid| match forge {
                Forge::Pos(e, s) => token(&sid, *e, *s),
                Forge::OurEpoch(f) => token(&sid, epoch, self.head * u64::from(*f) / 1000),
                Forge::Future(k) => token(&sid, epoch, self.head + k),
                Forge::Garbage(g) => format!("{sid}~{g}"),
            }),
        }
    }

    /// What the request offering `claim` must get, from the model alone.
    pub(crate) fn expect(&self, claim: Option<&(String, Claimed)>) -> Expect {
        let head = self.head;
        let Some((sid, claimed)) = claim else {
            return Expect::Accept(Admission {
                sid: None,
                continuity: Continuity::New,
                start: head,
                replay: Vec::new(),
            });
        };
        if self.marks.contains(sid) {
            return Expect::NoContent(sid.clone());
        }
        let gap = |reason| {
            Expect::Accept(Admission {
                sid: Some(sid.clone()),
                continuity: Continuity::Gap(reason),
                start: head,
                replay: Vec::new(),
            })
        };
        let live = self.sessions.get(sid).filter(|s| s.life == Life::Live);
        match *claimed {
            Claimed::Bare if live.is_some() => gap(GapReason::NoPosition),
            Claimed::Bare => Expect::Accept(Admission {
                sid: Some(sid.clone()),
                continuity: Continuity::New,
                start: head,
                replay: Vec::new(),
            }),
            Claimed::Invalid => gap(GapReason::InvalidPosition),
            Claimed::At { epoch, .. } if Some(epoch) != self.epoch => gap(GapReason::UnknownEpoch),
            Claimed::At { seq, .. } => {
                let Some(session) = live else {
                    return gap(GapReason::Expired);
                };
                if seq < session.since {
                    // Before this incarnation existed: what its tab missed is unknown.
                    return gap(GapReason::Expired);
                }
                if seq > head {
                    return gap(GapReason::InvalidPosition);
                }
                let replay: Vec<u64> = self
                    .owed
                    .get(sid)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&s| s > seq)
                    .collect();
                // Each log keeps the newest events up to the bounds, and one replay holds at
                // most as much: within them, nothing owed after the claim was dropped.
                let bytes: usize = replay.iter().map(|s| data_len(&format!("e{s}"))).sum();
                if replay.len() > self.bounds.max_events || bytes > self.bounds.max_bytes {
                    return gap(GapReason::Overflow);
                }
                Expect::Accept(Admission {
                    sid: Some(sid.clone()),
                    continuity: Continuity::Resumed {
                        replayed: replay.len(),
                    },
                    start: seq,
                    replay,
                })
            }
        }
    }

    pub(crate) fn decide(&self, value: Option<&str>, query: bool) -> Decision {
        let target = match value {
            Some(v) if query => format!("/events?id={}", percent_encode(v)),
            _ => "/events".to_owned(),
        };
        let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        if let Some(v) = value.filter(|_| !query) {
            req.header(b"last-event-id", v.as_bytes());
        }
        self.hub.decide(&req, self.now())
    }

    /// Tab `t` connects offering `value`; returns the continuity when accepted.
    pub(crate) fn connect(
        &mut self,
        t: usize,
        value: Option<String>,
        query: bool,
    ) -> Option<Continuity> {
        if query {
            // A page load: the new page starts with a fresh parser, and the old page's
            // connection is noticed gone only after the new request is in.
        } else if let Some(outlet) = self.tabs[t].outlet.take() {
            // EventSource reconnects once its connection is over.
            drop(outlet);
            let c = self.tabs[t].conn.take().unwrap();
            self.outlet_ended(c);
        }
        let claim = value.as_deref().and_then(read_offer);
        let expect = self.expect(claim.as_ref());
        let decision = self.decide(value.as_deref(), query);
        let context = format!("offer {value:?} (query: {query}) by tab {t}");
        let old = (self.tabs[t].outlet.take(), self.tabs[t].conn.take());
        let continuity = match (expect, decision) {
            (Expect::NoContent(sid), Decision::NoContent { session, .. }) => {
                assert_eq!(
                    session.as_str(),
                    sid,
                    "inv 4: 204 for the closed id; {context}"
                );
                self.marks.remove(&sid);
                self.cov.no_content += 1;
                None
            }
            (Expect::Accept(want), Decision::Accept(accepted)) => {
                let Admission {
                    continuity,
                    ref replay,
                    ..
                } = want;
                let sid = accepted.session.id().as_str().to_owned();
                match &want.sid {
                    Some(want) => assert_eq!(
                        &sid, want,
                        "inv 4: a valid offered session id is kept; {context}"
                    ),
                    None => assert!(
                        !self.sessions.contains_key(&sid) && !self.owed.contains_key(&sid),
                        "a generated id is a new one: {sid}; {context}"
                    ),
                }
                let claimed = claim.as_ref().map(|(_, c)| *c);
                match (continuity, accepted.continuity) {
                    (Continuity::Resumed { .. }, Continuity::Gap(_)) => panic!(
                        "inv 2 (completeness): expected {continuity:?} (owed {replay:?} after \
                         {claimed:?}), got {:?}; {context}",
                        accepted.continuity
                    ),
                    (Continuity::Gap(_), Continuity::Resumed { .. }) => panic!(
                        "inv 3 (no silent skip): expected {continuity:?}, got {:?}; {context}",
                        accepted.continuity
                    ),
                    (want, got) => assert_eq!(got, want, "continuity; {context}"),
                }
                let source = match (&claim, query) {
                    (None, _) => IdSource::Generated,
                    (Some(_), true) => IdSource::Query,
                    (Some(_), false) => IdSource::LastEventId,
                };
                assert_eq!(accepted.source, source, "id source; {context}");
                *self
                    .cov
                    .continuity
                    .entry(continuity_name(continuity))
                    .or_default() += 1;
                self.cov.replayed += replay.len();
                self.attach(t, sid, claimed, &want, accepted);
                Some(continuity)
            }
            (expect, decision) => panic!("expected {expect:?}, got {decision:?}; {context}"),
        };
        if let (Some(outlet), Some(c)) = old {
            drop(outlet);
            self.outlet_ended(c);
        }
        if query {
            self.tabs[t].decoder = Decoder::new();
        } else {
            self.tabs[t].decoder.finish();
        }
        continuity
    }

    /// Attaches the accepted connection to tab `t`, and to session `sid` in the model.
    pub(crate) fn attach(
        &mut self,
        t: usize,
        sid: String,
        claimed: Option<Claimed>,
        want: &Admission,
        accepted: Accepted,
    ) {
        let Admission {
            continuity,
            start,
            ref replay,
            ..
        } = *want;
        let c = self.conns.len();
        // What the budget counts: the preamble and the replay. (The epoch is unknown only for
        // the first connection of a run, which is drained at once.)
        let epoch = self.epoch.unwrap_or_default();
        let preamble = token(&sid, epoch, start);
        let id_line = "id: \n".len() + preamble.len();
        let queued = format!("retry: {RETRY_MS}\n\n").len()
            + id_line
            + replay
                .iter()
                .map(|&seq| logged_len(&sid, epoch, seq))
                .sum::<usize>();
        let inc = match self.sessions.get_mut(&sid) {
            Some(session) if session.life == Life::Live => {
                let old = session.link.replace(c);
                session.detached_at = None;
                let inc = session.inc;
                if let Some(old) = old {
                    self.replace(old);
                }
                inc
            }
            _ => {
                // New, or an id that is gone (or still closing) comes back: a new incarnation.
                self.incs += 1;
                self.sessions.insert(
                    sid.clone(),
                    ModelSession {
                        inc: self.incs,
                        life: Life::Live,
                        since: self.head,
                        link: Some(c),
                        detached_at: None,
                    },
                );
                self.incs
            }
        };
        self.conns.push(Conn {
            sid: sid.clone(),
            inc,
            claimed,
            continuity,
            start,
            expected: replay.iter().map(|&s| Got::Logged(s)).collect(),
            taken: 0,
            ending: None,
            undrained: true,
            queued,
            id_line: replay.is_empty().then_some(id_line),
            replaced: false,
            preamble_taken: false,
            gone: false,
            received: Vec::new(),
            fed: Vec::new(),
            preamble_seen: false,
            last_id: String::new(),
        });
        let tab = &mut self.tabs[t];
        tab.outlet = Some(accepted.outlet);
        tab.conn = Some(c);
        tab.handle = Some((accepted.session, inc));
        tab.sid = Some(sid);
    }

    /// A newer connection took the session from connection `c`.
    pub(crate) fn replace(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if conn.ending.is_some() && !conn.undrained {
            // Already over (ended with nothing left to write): it keeps its end.
            return;
        }
        // What it had not taken yet is dropped, the preamble too; its last block is the
        // fresh id.
        conn.expected.truncate(conn.taken);
        if !conn.preamble_taken {
            conn.preamble_seen = true;
        }
        conn.ending = Some(EndReason::Replaced);
        conn.replaced = true;
        conn.undrained = true;
    }

    /// The outlet of connection `c` was dropped or finished.
    pub(crate) fn outlet_ended(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        conn.gone = true;
        let Some(session) = self.sessions.get_mut(&conn.sid) else {
            return;
        };
        if session.inc != conn.inc || session.link != Some(c) {
            return;
        }
        match session.life {
            Life::Live => {
                session.link = None;
                session.detached_at = Some(self.now_ms);
            }
            Life::Closing => {
                self.sessions.remove(&conn.sid);
            }
        }
    }
}
