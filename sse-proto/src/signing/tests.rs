use proptest::prelude::*;

use super::*;

const SECRET_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SECRET_B: &str = "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";

fn key(id: &str, hex: &str) -> Key {
    Key::from_hex(id, hex).unwrap()
}

fn ring() -> KeyRing {
    KeyRing::new(key("k1", SECRET_A))
}

fn alice() -> Option<&'static [u8]> {
    Some(b"alice")
}

#[test]
fn issued_ids_have_the_documented_shape() {
    let id = ring().issue([0xff; 16], alice()).unwrap();
    let parts: Vec<&str> = id.as_str().split('.').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert_eq!(parts[0], "k1");
    assert_eq!(parts[1], "_____________________w");
    assert_eq!(parts[2].len(), ENCODED_LEN);
    assert_eq!(id.len(), 2 + 2 + 2 * ENCODED_LEN);

    let longest = KeyRing::new(key("0123456789abcdef", SECRET_A));
    let id = longest.issue([0; 16], None).unwrap();
    assert_eq!(id.len(), MAX_SIGNED_ID_LEN);
    assert_eq!(MAX_SIGNED_ID_LEN, 62);
    assert!(SessionId::parse(id.as_bytes(), 128).is_ok());
}

/// Pins the format: a change here breaks every id already issued, and mixed-version nodes.
#[test]
fn known_answer() {
    let random: [u8; 16] = std::array::from_fn(|i| i as u8);
    let id = ring().issue(random, alice()).unwrap();
    assert_eq!(
        id.as_str(),
        "k1.AAECAwQFBgcICQoLDA0ODw.OzZwDcJ0s8DVDT-AOaqi7A"
    );
}

#[test]
fn tag_is_truncated_hmac_sha256_over_the_documented_input() {
    let random = [9u8; 16];
    let id = ring().issue(random, alice()).unwrap();

    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).unwrap();
    mac.update(b"sse-rs/session-id/v1\0");
    mac.update(&[2]);
    mac.update(b"k1");
    mac.update(&random);
    mac.update(&[1]);
    mac.update(&5u64.to_be_bytes());
    mac.update(b"alice");
    let full = mac.finalize().into_bytes();
    let want = URL_SAFE_NO_PAD.encode(&full[..16]);
    assert_eq!(id.as_str().rsplit('.').next(), Some(want.as_str()));
}

#[test]
fn round_trip_reports_the_key() {
    let ring = ring();
    let id = ring.issue([3; 16], None).unwrap();
    let ok = ring.verify(id.as_bytes(), None).unwrap();
    assert_eq!(ok.key_id(), "k1");
    assert!(ok.is_current());
    assert_eq!(ok.random(), [3; 16]);
    assert_eq!(ring.issue([3; 16], None).unwrap(), id, "deterministic");
    assert_ne!(ring.issue([4; 16], None).unwrap(), id);
}

#[test]
fn principal_binding() {
    let ring = ring();
    let unbound = ring.issue([1; 16], None).unwrap();
    let empty = ring.issue([1; 16], Some(b"")).unwrap();
    let bound = ring.issue([1; 16], alice()).unwrap();
    assert_ne!(unbound, empty);
    assert_ne!(empty, bound);

    let bad = Err(SignatureError::BadMac);
    assert_eq!(ring.verify(unbound.as_bytes(), Some(b"")), bad);
    assert_eq!(ring.verify(unbound.as_bytes(), alice()), bad);
    assert_eq!(ring.verify(empty.as_bytes(), None), bad);
    assert_eq!(ring.verify(bound.as_bytes(), None), bad);
    assert_eq!(ring.verify(bound.as_bytes(), Some(b"alicf")), bad);
    assert_eq!(ring.verify(bound.as_bytes(), Some(b"alice\0")), bad);
    assert!(ring.verify(unbound.as_bytes(), None).is_ok());
    assert!(ring.verify(empty.as_bytes(), Some(b"")).is_ok());
}

#[test]
fn hostile_input_is_refused_without_panicking() {
    let ring = ring();
    let good = ring.issue([5; 16], None).unwrap();
    let good = good.as_str();
    let (kid_dot, rest) = good.split_at(3);
    let (random, dot_tag) = rest.split_at(ENCODED_LEN);
    let malformed: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b".".to_vec(),
        b"..".to_vec(),
        b"k1.".to_vec(),
        b"admin".to_vec(),
        b"k1.admin.admin".to_vec(),
        good.as_bytes()[..good.len() - 1].to_vec(),
        format!("{good}A").into_bytes(),
        format!("{good}~3").into_bytes(),
        good.as_bytes()[3..].to_vec(),
        format!(".{good}").into_bytes(),
        format!("k.{good}").into_bytes(),
        format!("{kid_dot}{random}{}", &dot_tag[1..]).into_bytes(),
        format!("{kid_dot}{random}..{}", &dot_tag[2..]).into_bytes(),
        format!("{kid_dot}{}={dot_tag}", &random[1..]).into_bytes(),
        format!("{kid_dot}{}+{dot_tag}", &random[1..]).into_bytes(),
        format!("{kid_dot}{}/{dot_tag}", &random[1..]).into_bytes(),
        format!("{kid_dot}{}é{dot_tag}", &random[2..]).into_bytes(),
        format!("0123456789abcdefg.{random}{dot_tag}").into_bytes(),
        [b"k1.".as_slice(), &[0xff; 22], b".", &[0xfe; 22]].concat(),
        vec![b'.'; 47],
        vec![b'A'; 10_000],
    ];
    for raw in &malformed {
        assert_eq!(
            ring.verify(raw, None),
            Err(SignatureError::Malformed),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // The last character of 16 bytes in base64url carries 4 bits of padding: a non-zero
    // padding bit is another text for the same bytes, and is refused.
    let mut noncanonical = good.as_bytes().to_vec();
    let last = noncanonical.len() - 1;
    noncanonical[last] = match noncanonical[last] {
        b'A' => b'B',
        _ => b'A',
    };
    assert!(ring.verify(&noncanonical, None).is_err());

    let foreign = format!("k9.{random}{dot_tag}");
    assert_eq!(
        ring.verify(foreign.as_bytes(), None),
        Err(SignatureError::UnknownKey)
    );
}

#[test]
fn keys_from_hex() {
    let lower = key("a", &SECRET_B.to_lowercase());
    let upper = key("a", SECRET_B);
    let ring_l = KeyRing::new(lower);
    let ring_u = KeyRing::new(upper);
    assert_eq!(
        ring_l.issue([0; 16], None).unwrap(),
        ring_u.issue([0; 16], None).unwrap()
    );
    assert_eq!(
        ring_l.issue([0; 16], None).unwrap(),
        KeyRing::new(Key::new("a", [0xab; 32]).unwrap())
            .issue([0; 16], None)
            .unwrap()
    );

    let err = |id: &str, hex: &str| Key::from_hex(id, hex).unwrap_err();
    assert_eq!(err("k", ""), KeyError::HexLength(0));
    assert_eq!(err("k", &SECRET_A[..63]), KeyError::HexLength(63));
    assert_eq!(err("k", &format!("{SECRET_A}0")), KeyError::HexLength(65));
    assert_eq!(
        err("k", &format!("{}g", &SECRET_A[..63])),
        KeyError::HexDigit(63)
    );
    assert_eq!(
        err("k", &format!("+{}", &SECRET_A[1..])),
        KeyError::HexDigit(0)
    );
    assert_eq!(
        err("k", &format!(" {}", &SECRET_A[1..])),
        KeyError::HexDigit(0)
    );
    // 32 two-byte characters: 64 bytes, none of them hex.
    assert_eq!(err("k", &"é".repeat(32)), KeyError::HexDigit(0));
    for bad in [
        "",
        "k.1",
        "k~1",
        "k 1",
        "é",
        "0123456789abcdefg",
        "k/1",
        "k+1",
        "k=1",
    ] {
        assert_eq!(err(bad, SECRET_A), KeyError::BadKeyId, "{bad:?}");
    }
    assert!(Key::from_hex("Key_2025-01", SECRET_A).is_ok());
}

#[test]
fn debug_and_errors_never_show_key_material() {
    let ring = {
        let mut r = KeyRing::new(Key::new("new", [0xab; 32]).unwrap());
        r.add(key("old", SECRET_B)).unwrap();
        r
    };
    let key = Key::new("k", [0xab; 32]).unwrap();
    for text in [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{ring:?}"),
        format!("{ring:#?}"),
    ] {
        let lower = text.to_lowercase();
        assert!(!lower.contains("abab") && !lower.contains("171"), "{text}");
        assert!(!lower.contains("0x") && !lower.contains("mac"), "{text}");
    }
    assert_eq!(
        format!("{ring:?}"),
        r#"KeyRing { current: "new", keys: ["new", "old"] }"#
    );
    let err = Key::from_hex("k", &format!("{}x", &SECRET_B[..63])).unwrap_err();
    assert!(!err.to_string().to_lowercase().contains("ab"), "{err}");
    for e in [
        SignatureError::Malformed,
        SignatureError::UnknownKey,
        SignatureError::BadMac,
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn ring_management() {
    let mut ring = ring();
    assert_eq!(ring.add(key("k1", SECRET_B)), Err(KeyError::DuplicateKeyId));
    assert_eq!(
        ring.rotate(key("k1", SECRET_B)),
        Err(KeyError::DuplicateKeyId)
    );
    assert_eq!(ring.retire("k1"), Err(KeyError::RetireCurrent));
    assert_eq!(ring.retire("nope"), Err(KeyError::UnknownKeyId));
    ring.add(key("k0", SECRET_B)).unwrap();
    ring.rotate(key("k2", SECRET_B)).unwrap();
    assert_eq!(ring.current_key_id(), "k2");
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["k2", "k1", "k0"]);
    ring.retire("k1").unwrap();
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["k2", "k0"]);
    assert_eq!(ring.retire("k1"), Err(KeyError::UnknownKeyId));
}

#[test]
fn a_key_added_to_verify_does_not_issue() {
    let mut ring = ring();
    ring.add(key("k2", SECRET_B)).unwrap();
    let id = ring.issue([8; 16], None).unwrap();
    assert!(id.as_str().starts_with("k1."));
    let other = KeyRing::new(key("k2", SECRET_B))
        .issue([8; 16], None)
        .unwrap();
    let ok = ring.verify(other.as_bytes(), None).unwrap();
    assert_eq!(ok.key_id(), "k2");
    assert!(!ok.is_current());
}

#[test]
fn same_key_id_with_another_secret_is_a_bad_mac() {
    let id = ring().issue([6; 16], None).unwrap();
    let impostor = KeyRing::new(key("k1", SECRET_B));
    assert_eq!(
        impostor.verify(id.as_bytes(), None),
        Err(SignatureError::BadMac)
    );
}

fn principal() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..48))
}

fn secret() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

proptest! {
    #[test]
    fn prop_round_trip(random in any::<[u8; 16]>(), p in principal(), s in secret()) {
        let ring = KeyRing::new(Key::new("k", s).unwrap());
        let id = ring.issue(random, p.as_deref()).unwrap();
        prop_assert!(id.len() <= MAX_SIGNED_ID_LEN);
        prop_assert!(id.as_bytes().iter().all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        prop_assert!(SessionId::parse(id.as_bytes(), 128).is_ok());
        let ok = ring.verify(id.as_bytes(), p.as_deref()).unwrap();
        prop_assert_eq!(ok.random(), random);
        prop_assert!(ok.is_current());
    }

    #[test]
    fn prop_any_single_byte_change_is_refused(
        random in any::<[u8; 16]>(),
        p in principal(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let ring = ring();
        let id = ring.issue(random, p.as_deref()).unwrap();
        let mut raw = id.as_bytes().to_vec();
        let i = index.index(raw.len());
        prop_assume!(raw[i] != byte);
        raw[i] = byte;
        prop_assert!(ring.verify(&raw, p.as_deref()).is_err());
    }

    #[test]
    fn prop_another_key_is_refused(
        random in any::<[u8; 16]>(),
        p in principal(),
        a in secret(),
        b in secret(),
    ) {
        prop_assume!(a != b);
        let id = KeyRing::new(Key::new("k", a).unwrap()).issue(random, p.as_deref()).unwrap();
        let same_kid = KeyRing::new(Key::new("k", b).unwrap());
        prop_assert_eq!(same_kid.verify(id.as_bytes(), p.as_deref()), Err(SignatureError::BadMac));
        let other_kid = KeyRing::new(Key::new("j", a).unwrap());
        prop_assert_eq!(other_kid.verify(id.as_bytes(), p.as_deref()), Err(SignatureError::UnknownKey));
    }

    #[test]
    fn prop_another_principal_is_refused(random in any::<[u8; 16]>(), p in principal(), q in principal()) {
        prop_assume!(p != q);
        let ring = ring();
        let id = ring.issue(random, p.as_deref()).unwrap();
        prop_assert_eq!(ring.verify(id.as_bytes(), q.as_deref()), Err(SignatureError::BadMac));
    }

    #[test]
    fn prop_rotation(random in any::<[u8; 16]>(), p in principal(), old in secret(), new in secret()) {
        let mut ring = KeyRing::new(Key::new("old", old).unwrap());
        let id = ring.issue(random, p.as_deref()).unwrap();
        ring.rotate(Key::new("new", new).unwrap()).unwrap();

        let verified = ring.verify(id.as_bytes(), p.as_deref()).unwrap();
        prop_assert_eq!(verified.key_id(), "old");
        prop_assert!(!verified.is_current());
        let resigned = ring.resign(&verified, p.as_deref()).unwrap();
        prop_assert_ne!(&resigned, &id);
        let again = ring.verify(resigned.as_bytes(), p.as_deref()).unwrap();
        prop_assert_eq!(again.key_id(), "new");
        prop_assert!(again.is_current());
        prop_assert_eq!(again.random(), random);
        prop_assert_eq!(ring.resign(&again, p.as_deref()).unwrap(), resigned.clone());

        ring.retire("old").unwrap();
        prop_assert_eq!(ring.verify(id.as_bytes(), p.as_deref()), Err(SignatureError::UnknownKey));
        prop_assert!(ring.verify(resigned.as_bytes(), p.as_deref()).is_ok());
    }

    #[test]
    fn prop_arbitrary_bytes_never_verify(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(ring().verify(&raw, None).is_err());
    }

    #[test]
    fn prop_id_shaped_garbage_never_verifies(
        kid in "[A-Za-z0-9_.~-]{0,20}",
        random in "[A-Za-z0-9_=+/.-]{0,24}",
        tag in "[A-Za-z0-9_=+/.-]{0,24}",
    ) {
        let raw = format!("{kid}.{random}.{tag}");
        prop_assert!(ring().verify(raw.as_bytes(), None).is_err());
        prop_assert!(ring().verify(raw.as_bytes(), alice()).is_err());
    }
}
