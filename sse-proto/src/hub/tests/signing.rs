//! Signed ids in the hub: issued signed and bound to the principal, verified before anything
//! else, re-signed after a rotation, and the application's id policy.

use std::sync::Mutex;

use super::*;
use crate::decode::Decoder;
use crate::error::SignatureError;
use crate::id::{IdRejection, IdSource, IdVerdict, RejectedId};
use crate::lifecycle::{Continuity, SessionEvent};
use crate::signing::{Key, KeyRing};

fn ring(id: &str, byte: u8) -> KeyRing {
    KeyRing::new(Key::new(id, [byte; 32]).expect("a valid key id"))
}

fn signed(resume: bool) -> Hub {
    let builder = unwindowed().keep_alive(None).signing(ring("k1", 7));
    match resume {
        true => builder
            .resume(ResumeConfig::new(Duration::from_secs(60)))
            .build(Instant::now),
        false => builder.build(Instant::now),
    }
}

/// A request offering `last` (as `Last-Event-ID`) and `query` (as `?id=`), for `principal`.
fn decide(hub: &Hub, query: Option<&str>, last: Option<&str>, principal: Option<&str>) -> Decision {
    let target = query.map_or("/e".to_owned(), |q| format!("/e?id={q}"));
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(v) = last {
        req.header(b"last-event-id", v.as_bytes());
    }
    if let Some(p) = principal {
        req.principal(p.as_bytes());
    }
    hub.decide(&req, Instant::now())
}

fn accepted(d: Decision) -> Accepted {
    match d {
        Decision::Accept(a) => a,
        other => panic!("expected accept: {other:?}"),
    }
}

/// The last event id a browser holds after reading everything queued on `outlet`.
fn last_event_id(outlet: &mut Outlet) -> String {
    let (_, bytes) = drain(outlet, Instant::now());
    let mut decoder = Decoder::new();
    decoder.feed(&bytes).expect("well-formed");
    while decoder.poll_item().is_some() {}
    decoder.last_event_id().to_owned()
}

#[test]
fn ids_are_issued_signed_and_bound_to_the_principal() {
    let hub = signed(false);
    let a = accepted(decide(&hub, None, None, Some("alice")));
    let id = a.session.id().to_string();
    assert!(id.starts_with("k1.") && id.len() <= 62, "{id}");
    assert!(a.rejected.is_empty());
    drop(a.outlet);

    // Alice's reconnect keeps it.
    let back = accepted(decide(&hub, None, Some(&id), Some("alice")));
    assert_eq!(back.session.id().as_str(), id);
    assert_eq!(back.source, IdSource::LastEventId);
    drop(back.outlet);

    // Bob, or nobody, offering Alice's id gets a fresh one; the refusal is reported.
    for principal in [Some("bob"), None] {
        let other = accepted(decide(&hub, None, Some(&id), principal));
        assert_ne!(other.session.id().as_str(), id);
        assert_eq!(other.source, IdSource::Generated);
        assert_eq!(
            other.rejected,
            [RejectedId {
                source: IdSource::LastEventId,
                reason: IdRejection::Signature(SignatureError::BadMac)
            }]
        );
    }
}

#[test]
fn a_forged_or_chosen_id_reaches_nothing() {
    let hub = signed(false);
    let victim = accepted(decide(&hub, None, None, Some("alice")));
    let id = victim.session.id().to_string();
    let mut victim_out = victim.outlet;
    let _ = drain(&mut victim_out, Instant::now());
    // An attacker with the victim's id but another principal, a chosen id, a tampered one.
    // One character inside the tag (the last one also holds padding bits, which would make
    // the encoding malformed rather than the tag wrong).
    let mut tampered = id.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    for (offered, principal, reason) in [
        (id.as_str(), Some("mallory"), SignatureError::BadMac),
        ("admin", Some("alice"), SignatureError::Malformed),
        (tampered.as_str(), Some("alice"), SignatureError::BadMac),
    ] {
        let a = accepted(decide(&hub, Some(offered), None, principal));
        assert_ne!(a.session.id().as_str(), id, "{offered}");
        assert_eq!(
            a.rejected[0].reason,
            IdRejection::Signature(reason),
            "{offered}"
        );
    }
    // The victim's stream was never replaced, and nothing was sent to the others.
    assert_eq!(victim_out.end_reason(), None);
    assert!(victim.session.is_attached());
    assert_eq!(drain(&mut victim_out, Instant::now()).0, Poll::Pending);
}

#[test]
fn an_unverified_header_falls_back_to_the_query() {
    let hub = signed(false);
    let a = accepted(decide(&hub, None, None, None));
    let id = a.session.id().to_string();
    drop(a.outlet);
    let b = accepted(decide(&hub, Some(&id), Some("k1.forged.id"), None));
    assert_eq!(b.session.id().as_str(), id);
    assert_eq!(b.source, IdSource::Query);
    assert_eq!(b.rejected.len(), 1);
}

#[test]
fn signed_ids_carry_positions_and_closed_ones_get_204() {
    let hub = signed(true);
    let a = accepted(decide(&hub, None, None, Some("alice")));
    let id = a.session.id().to_string();
    let mut outlet = a.outlet;
    a.session.send("one").expect("live");
    let last = last_event_id(&mut outlet);
    assert!(last.starts_with(&format!("{id}~")), "{last}");
    drop(outlet);
    a.session.send("two").expect("logged");
    let b = accepted(decide(&hub, None, Some(&last), Some("alice")));
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    assert_eq!(b.session.id().as_str(), id);
    b.session.close();
    let d = decide(&hub, None, Some(&last), Some("alice"));
    assert!(matches!(d, Decision::NoContent { ref session, .. } if session.as_str() == id));
    // A closed id offered by someone else is not verified: not even a 204 for them.
    assert!(matches!(
        decide(&hub, None, Some(&last), Some("bob")),
        Decision::Accept(_)
    ));
}

#[test]
fn a_rotation_re_signs_a_returning_session_and_it_goes_on() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let hub = unwindowed()
        .keep_alive(None)
        .signing(ring("k1", 7))
        .resume(ResumeConfig::new(Duration::from_secs(60)))
        .observe(move |e| seen.lock().expect("not poisoned").push(e.clone()))
        .build(Instant::now);
    let a = accepted(decide(&hub, None, None, Some("alice")));
    let old = a.session.id().to_string();
    let mut outlet = a.outlet;
    let last = last_event_id(&mut outlet);
    drop(outlet);
    a.session.send("while away").expect("logged");

    hub.update_key_ring(|ring| ring.rotate(Key::new("k2", [9; 32]).expect("valid")))
        .expect("signed ids")
        .expect("a new key id");
    let b = accepted(decide(&hub, None, Some(&last), Some("alice")));
    let new = b.session.id().to_string();
    assert!(new.starts_with("k2.") && new != old, "{new}");
    // The same session under its new id: nothing lost, and the tab learns the new id.
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    let mut outlet = b.outlet;
    let resigned = last_event_id(&mut outlet);
    assert!(resigned.starts_with(&format!("{new}~")), "{resigned}");
    assert_eq!(a.session.end_reason(), Some(EndReason::Renamed));
    assert!(hub.session(&old).is_none() && hub.session(&new).is_some());
    assert!(
        !events
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|e| matches!(e, SessionEvent::Ended { .. })),
        "a rename ends no session"
    );
    assert!(
        events
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|e| matches!(
                e,
                SessionEvent::Renamed { from, to } if from.as_str() == old && to.as_str() == new
            ))
    );

    // Once k1 is retired, its ids are refused; the re-signed one goes on.
    hub.update_key_ring(|ring| ring.retire("k1"))
        .expect("signed ids")
        .expect("k1 was not current");
    drop(outlet);
    let c = accepted(decide(&hub, None, Some(&last), Some("alice")));
    assert_eq!(
        c.rejected[0].reason,
        IdRejection::Signature(SignatureError::UnknownKey)
    );
    drop(c);
    let d = accepted(decide(&hub, None, Some(&resigned), Some("alice")));
    assert_eq!(d.session.id().as_str(), new);
    assert_eq!(d.continuity, Continuity::Resumed { replayed: 0 });
}

#[test]
fn the_id_policy_accepts_refuses_or_reissues() {
    let hub = unwindowed()
        .keep_alive(None)
        .id_policy(|id, principal, _| match (id.as_str(), principal) {
            ("banned", _) => IdVerdict::Refuse,
            (_, Some(b"new-login")) => IdVerdict::Reissue,
            _ => IdVerdict::Accept,
        })
        .build(Instant::now);
    let a = accepted(decide(&hub, Some("tab-1"), None, None));
    assert_eq!(a.session.id().as_str(), "tab-1");
    let b = accepted(decide(&hub, Some("banned"), None, None));
    assert_ne!(b.session.id().as_str(), "banned");
    assert_eq!(b.rejected[0].reason, IdRejection::Refused);
    let c = accepted(decide(&hub, Some("tab-2"), None, Some("new-login")));
    assert_ne!(c.session.id().as_str(), "tab-2");
    assert!(
        c.rejected.is_empty(),
        "a re-issue is not reported as a refusal"
    );
    assert_eq!(c.source, IdSource::Generated);
}
