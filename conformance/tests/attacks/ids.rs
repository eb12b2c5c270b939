//! Taking someone else's session: with signed ids (`--secret`), a copied, chosen or forged id
//! reaches nothing; without them an id is a bearer name (what signing fixes).

use std::time::Duration;

use sse_conformance::{Demo, percent_encode};

use super::{Server, start_with};

const SECRET: &str = "6c1b0f6ad8f9c4b1e8e2a5d3c7f90b1a2d4e6f8091a3b5c7d9e1f2a4b6c8d0e2";

fn connect_id(stream: &mut sse_conformance::EventStream) -> String {
    let connect = stream.next_named("connect").unwrap();
    let value: serde_json::Value = serde_json::from_str(&connect.data).unwrap();
    value["id"].as_str().unwrap().to_owned()
}

fn open_as(
    demo: &Demo,
    user: &str,
    target: &str,
    last: Option<&str>,
) -> (sse_conformance::EventStream, String) {
    let cookie = format!("user={user}");
    let mut headers: Vec<(&str, &[u8])> = vec![("Cookie", cookie.as_bytes())];
    if let Some(last) = last {
        headers.push(("Last-Event-ID", last.as_bytes()));
    }
    let mut stream = demo.events(target, &headers).unwrap();
    assert_eq!(stream.head.status, 200);
    let id = connect_id(&mut stream);
    (stream, id)
}

fn post(demo: &Demo, id: &str, body: &str) -> u16 {
    let target = format!("/sessions/{}/events", percent_encode(id.as_bytes()));
    demo.request("POST", &target, &[], body.as_bytes())
        .unwrap()
        .head
        .status
}

/// Mallory copies Alice's id (from a URL, a log, a shared machine) and offers it, as
/// `Last-Event-ID` and as `?id=`: with signed ids she gets a session of her own, and Alice's
/// stream is neither replaced nor read.
pub(crate) fn a_copied_id_does_not_reach_another_user(bin: &str, _server: Server) {
    let demo = start_with(bin, &["--secret", SECRET], &[]);
    let (mut alice, id) = open_as(&demo, "alice", "/events", None);
    assert!(id.starts_with("k1.") && id.len() <= 62, "a signed id: {id}");
    let query = format!("/events?id={}", percent_encode(id.as_bytes()));
    for (target, last) in [("/events", Some(id.as_str())), (query.as_str(), None)] {
        let (mut mallory, got) = open_as(&demo, "mallory", target, last);
        assert_ne!(got, id, "Mallory must not get Alice's session");
        assert_eq!(post(&demo, &id, "for alice"), 202);
        assert!(
            alice
                .wait_for(|s| s.events().iter().filter(|e| e.data == "for alice").count() >= 1)
                .unwrap()
        );
        assert!(
            !mallory
                .wait_for_within(Duration::from_millis(200), |s| s
                    .events()
                    .iter()
                    .any(|e| e.data == "for alice"))
                .unwrap(),
            "Mallory read Alice's events"
        );
        assert!(!alice.ended(), "Alice's stream was replaced");
        mallory.hang_up();
        let seen = alice
            .events()
            .iter()
            .filter(|e| e.data == "for alice")
            .count();
        assert!(seen >= 1);
    }
    // Alice herself, on reconnect, keeps her id.
    alice.hang_up();
    let (_again, same) = open_as(&demo, "alice", "/events", Some(&id));
    assert_eq!(same, id);
}

/// A chosen id (`?id=admin`) and a forged one (Alice's with one character changed) are
/// treated as absent: a fresh signed id, and the page's session is not theirs to pick.
pub(crate) fn a_chosen_or_forged_id_is_refused(bin: &str, _server: Server) {
    let demo = start_with(bin, &["--secret", SECRET], &[]);
    let (_alice, id) = open_as(&demo, "alice", "/events", None);
    let mut forged = id.clone().into_bytes();
    let at = forged.len() - 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for offered in ["admin", forged.as_str(), &format!("{id}x")] {
        let target = format!("/events?id={}", percent_encode(offered.as_bytes()));
        let (_s, got) = open_as(&demo, "alice", &target, None);
        assert_ne!(got, offered, "{offered}");
        assert_ne!(got, id);
        assert!(got.starts_with("k1."), "a fresh signed id: {got}");
    }
    assert_eq!(post(&demo, "admin", "x"), 404);
}

/// Signed ids and resume mode together: a dropped tab resumes exactly, its signed id with a
/// position after it.
pub(crate) fn signed_ids_resume_with_their_position(bin: &str, _server: Server) {
    let demo = start_with(bin, &["--secret", SECRET, "--resume-ms", "5000"], &[]);
    let (mut tab, id) = open_as(&demo, "alice", "/events", None);
    assert_eq!(post(&demo, &id, "one"), 202);
    assert!(
        tab.wait_for(|s| s.events().iter().any(|e| e.data == "one"))
            .unwrap()
    );
    let last = tab.last_event_id().to_owned();
    assert!(last.starts_with(&format!("{id}~")), "{last}");
    tab.hang_up();
    assert!(
        demo.wait_sessions(Duration::from_secs(2), |ids| ids.is_empty())
            .unwrap()
            .is_empty()
    );
    assert_eq!(post(&demo, &id, "two"), 202);
    let (mut back, same) = open_as(&demo, "alice", "/events", Some(&last));
    assert_eq!(same, id);
    assert!(
        back.wait_for(|s| s.events().iter().any(|e| e.data == "two"))
            .unwrap()
    );
    // Another user with the same position gets nothing of it.
    let (mut other, theirs) = open_as(&demo, "mallory", "/events", Some(&last));
    assert_ne!(theirs, id);
    assert!(
        !other
            .wait_for_within(Duration::from_millis(200), |s| s
                .events()
                .iter()
                .any(|e| e.data == "two"))
            .unwrap()
    );
}
