//! Signed session ids: a [`KeyRing`] that issues ids carrying an HMAC-SHA256 tag and checks
//! the ids clients offer back (feature `signing`).
//!
//! Without signing, a session id is a bearer name: whoever sends it in `Last-Event-ID` or `?id=`
//! gets that session, and a client may pick its own (`?id=admin`). A signed id can only have been
//! made by a holder of a key in the ring, and can be bound to the principal (the logged-in user)
//! it was issued to, so an id that is guessed, forged, altered or copied to another user's
//! browser does not verify. The handshake treats such an id as absent.
//!
//! # Format
//!
//! `<key id>.<random>.<mac>`, for example `k1.AAECAwQFBgcICQoLDA0ODw.3nX0…` (at most
//! [`MAX_SIGNED_ID_LEN`] = 62 bytes):
//!
//! - *key id*: 1 to 16 characters of `A`–`Z` `a`–`z` `0`–`9` `-` `_`, naming the key that signed;
//! - *random*: the 16 bytes given to [`KeyRing::issue`], base64url without padding (22 characters);
//! - *mac*: the first 16 bytes of HMAC-SHA256 under that key (22 characters) over
//!   `"sse-rs/session-id/v1\0"`, the key id's length (one byte) and the key id, the 16 random
//!   bytes, then the principal: `0x00` for none, or `0x01`, its length as a big-endian `u64`
//!   and its bytes. Every field has a fixed size or a length prefix, so no two
//!   (key id, random, principal) triples give the same input.
//!
//! Only URL-safe characters appear, never `~` (the hub appends positions after a `~`), and
//! nothing needs percent-encoding in a query. Decoding is strict: base64url text that is not the
//! canonical encoding of 16 bytes is refused, so each (key, random, principal) has exactly one
//! id and changing any byte of an id makes it fail.
//!
//! # Why a 128-bit tag is enough
//!
//! The MAC is keyed, so nobody without the key can compute or check a tag offline: a forger can
//! only offer ids to the server, one request each, and each guess succeeds with probability
//! 2<sup>-128</sup> (a billion requests a second for a century is under 2<sup>62</sup> tries).
//! Birthday bounds concern collisions the attacker can search for, which needs the key. RFC 2104
//! §5 advises keeping at least half the hash output (128 bits for SHA-256), which this does.
//!
//! # Principals
//!
//! An id issued with `Some(principal)` verifies only with exactly those bytes; an id issued with
//! `None` verifies only with `None` (and `Some(b"")` is a principal distinct from `None`). So when
//! a user logs in or out, the tab's previous id stops verifying and it gets a fresh one: an id
//! handed to a victim before login cannot follow them into their session.
//!
//! # Rotation
//!
//! The current key issues; every key in the ring verifies. To rotate, [`KeyRing::rotate`] to a
//! new key: the old one stays in the ring to verify. When [`verify`](KeyRing::verify) reports an
//! id signed by an older key ([`Verified::is_current`] is `false`), the hub
//! [`resign`](KeyRing::resign)s it: same random part, current key, sent in the preamble's `id:`
//! so the browser reconnects with it. Once sessions signed by the old key have had time to
//! reconnect, [`KeyRing::retire`] it; ids it signed then fail with
//! [`SignatureError::UnknownKey`]. With several nodes, first [`add`](KeyRing::add) the new key
//! everywhere, then rotate, so no node refuses ids another already issues.
//!
//! Ids carry no time: expiry belongs to the session store, not the signature.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{KeyError, SignatureError};
use crate::id::{IdRejection, SessionId};

/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 16;

/// Longest id a [`KeyRing`] issues, in bytes: a 16-byte key id, two dots and two 22-character
/// base64url parts. A hub's id length limit must be at least this.
pub const MAX_SIGNED_ID_LEN: usize = MAX_KEY_ID_LEN + 2 + 2 * ENCODED_LEN;

/// Bytes of the random part of an id.
const RANDOM_LEN: usize = 16;
/// Bytes of the HMAC-SHA256 output kept in an id.
const TAG_LEN: usize = 16;
/// Base64url characters (no padding) for 16 bytes.
const ENCODED_LEN: usize = 22;
/// Bytes of a secret.
const SECRET_LEN: usize = 32;
/// Separates the MAC inputs of signed session ids from any other use of the same key.
const DOMAIN: &[u8] = b"sse-rs/session-id/v1\0";

/// A key id: 1 to 16 ASCII characters of `A-Za-z0-9-_`, stored inline so ids stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyId {
    len: u8,
    bytes: [u8; MAX_KEY_ID_LEN],
}

impl KeyId {
    fn parse(raw: &[u8]) -> Option<KeyId> {
        let valid = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        if raw.is_empty() || raw.len() > MAX_KEY_ID_LEN || !raw.iter().all(valid) {
            return None;
        }
        let mut bytes = [0; MAX_KEY_ID_LEN];
        bytes.get_mut(..raw.len())?.copy_from_slice(raw);
        Some(KeyId {
            len: u8::try_from(raw.len()).ok()?,
            bytes,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One signing key: a 32-byte secret and the short id that names it inside session ids.
///
/// The secret comes from the application (a secret store, an environment variable); it should be
/// 32 random bytes. `Debug` shows the key id only, never the secret.
///
/// ```
/// use sse_proto::Key;
///
/// let key = Key::from_hex("k1", &"0f".repeat(32))?;
/// assert_eq!(key.id(), "k1");
/// assert_eq!(format!("{key:?}"), r#"Key { id: "k1", .. }"#);
/// # Ok::<(), sse_proto::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Key {
    id: KeyId,
    /// HMAC state already keyed with the secret (the secret itself is not kept).
    mac: Hmac<Sha256>,
}

impl Key {
    /// A key named `id` with the given secret.
    ///
    /// Fails with [`KeyError::BadKeyId`] unless `id` is 1 to 16 characters of `A`–`Z`, `a`–`z`,
    /// `0`–`9`, `-` and `_`.
    pub fn new(id: &str, secret: [u8; SECRET_LEN]) -> Result<Key, KeyError> {
        let id = KeyId::parse(id.as_bytes()).ok_or(KeyError::BadKeyId)?;
        // HMAC pads a key shorter than the block with zeros (RFC 2104 §2), so the 32-byte secret
        // padded to SHA-256's 64-byte block is the same key, and this constructor cannot fail.
        let mut block = [0u8; 64];
        block[..SECRET_LEN].copy_from_slice(&secret);
        let mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        Ok(Key { id, mac })
    }

    /// A key named `id` whose secret is given as 64 hex digits (either case), as the demos'
    /// `--secret HEX` flag takes it.
    ///
    /// Fails with [`KeyError::HexLength`] or [`KeyError::HexDigit`] for a bad secret (the message
    /// names a position, never the text), or [`KeyError::BadKeyId`] as [`new`](Self::new) does.
    pub fn from_hex(id: &str, hex: &str) -> Result<Key, KeyError> {
        let digits = hex.as_bytes();
        if digits.len() != 2 * SECRET_LEN {
            return Err(KeyError::HexLength(digits.len()));
        }
        let digit = |at: usize| {
            let value = digits.get(at).and_then(|&b| char::from(b).to_digit(16));
            value.map(|d| d as u8).ok_or(KeyError::HexDigit(at))
        };
        let mut secret = [0u8; SECRET_LEN];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = digit(2 * i)? << 4 | digit(2 * i + 1)?;
        }
        Key::new(id, secret)
    }

    /// The key's id, as it appears at the start of the ids it signs.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The first [`TAG_LEN`] bytes of this key's MAC over `random` and `principal`.
    fn tag(&self, random: &[u8; RANDOM_LEN], principal: Option<&[u8]>) -> [u8; TAG_LEN] {
        let full: [u8; 32] = self
            .mac_of(random, principal)
            .finalize()
            .into_bytes()
            .into();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// The keyed MAC state after the whole input of the format (see the module docs).
    fn mac_of(&self, random: &[u8; RANDOM_LEN], principal: Option<&[u8]>) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(&[self.id.len]);
        mac.update(self.id.as_bytes());
        mac.update(random);
        match principal {
            None => mac.update(&[0]),
            Some(p) => {
                mac.update(&[1]);
                mac.update(&(p.len() as u64).to_be_bytes());
                mac.update(p);
            }
        }
        mac
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys that sign and verify session ids: one current key issues, every key verifies.
///
/// Cheap to clone (a few hundred bytes per key); a hub holds one. `Debug` lists key ids only.
/// See the [module docs](crate::signing) for the id format, principals and the rotation procedure.
///
/// ```
/// use sse_proto::{Key, KeyRing};
///
/// let mut ring = KeyRing::new(Key::from_hex("k1", &"1f".repeat(32))?);
/// // The random part comes from the hub's id generator; the core draws none itself.
/// let random = [7u8; 16];
/// let alice = Some("alice".as_bytes());
/// let id = ring.issue(random, alice)?;
///
/// let ok = ring.verify(id.as_bytes(), alice)?;
/// assert!(ok.is_current());
/// assert!(ring.verify(id.as_bytes(), Some("mallory".as_bytes())).is_err());
/// assert!(ring.verify(b"k1.admin.admin", None).is_err());
///
/// // Rotation: the old key still verifies; re-sign what it verified with the new one.
/// ring.rotate(Key::from_hex("k2", &"2e".repeat(32))?)?;
/// let old = ring.verify(id.as_bytes(), alice)?;
/// assert!(!old.is_current());
/// let new_id = ring.resign(&old, alice)?;
/// assert_eq!(ring.verify(new_id.as_bytes(), alice)?.key_id(), "k2");
/// ring.retire("k1")?;
/// assert!(ring.verify(id.as_bytes(), alice).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    /// The key that issues.
    current: Key,
    /// Keys that only verify.
    others: Vec<Key>,
}

impl KeyRing {
    /// A ring whose only key, `current`, issues and verifies.
    pub fn new(current: Key) -> KeyRing {
        KeyRing {
            current,
            others: Vec::new(),
        }
    }

    /// Adds a key that verifies but does not issue (a key being rolled out to every node, or an
    /// old one still accepted).
    ///
    /// Fails with [`KeyError::DuplicateKeyId`] when the ring already holds a key with its id.
    pub fn add(&mut self, key: Key) -> Result<(), KeyError> {
        self.check_new(&key)?;
        self.others.push(key);
        Ok(())
    }

    /// Makes `key` the current key; the previous one stays in the ring and keeps verifying.
    ///
    /// Fails with [`KeyError::DuplicateKeyId`] when the ring already holds a key with its id.
    pub fn rotate(&mut self, key: Key) -> Result<(), KeyError> {
        self.check_new(&key)?;
        let previous = std::mem::replace(&mut self.current, key);
        self.others.insert(0, previous);
        Ok(())
    }

    /// Removes the key named `key_id`: ids it signed fail with [`SignatureError::UnknownKey`].
    ///
    /// Fails with [`KeyError::RetireCurrent`] for the current key and
    /// [`KeyError::UnknownKeyId`] when no key has that id.
    pub fn retire(&mut self, key_id: &str) -> Result<(), KeyError> {
        if self.current.id.as_bytes() == key_id.as_bytes() {
            return Err(KeyError::RetireCurrent);
        }
        let before = self.others.len();
        self.others.retain(|k| k.id() != key_id);
        if self.others.len() == before {
            return Err(KeyError::UnknownKeyId);
        }
        Ok(())
    }

    /// The id of the key that issues.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of every key in the ring: the current one, then the others (the most recently
    /// replaced first, then those added with [`add`](Self::add)).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(Key::id)
    }

    /// Issues the id for `random` under the current key, bound to `principal` (`None` for an
    /// id that verifies only without a principal).
    ///
    /// `random` must be unique per session (take it from the hub's generator, a CSPRNG): two
    /// sessions with the same random part and principal get the same id. Signing is
    /// deterministic, so issuing twice with the same inputs gives the same id. The result is at
    /// most [`MAX_SIGNED_ID_LEN`] bytes; the `Err` case cannot happen for the ids this ring
    /// makes and exists because a [`SessionId`] is only made through [`SessionId::parse`].
    pub fn issue(
        &self,
        random: [u8; RANDOM_LEN],
        principal: Option<&[u8]>,
    ) -> Result<SessionId, IdRejection> {
        let key = &self.current;
        let tag = key.tag(&random, principal);
        let mut text = String::with_capacity(MAX_SIGNED_ID_LEN);
        text.push_str(key.id());
        text.push('.');
        URL_SAFE_NO_PAD.encode_string(random, &mut text);
        text.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut text);
        SessionId::parse(text.as_bytes(), MAX_SIGNED_ID_LEN)
    }

    /// Checks that `raw` (a client's `Last-Event-ID` or `?id=` value, without any `~` suffix
    /// the hub appends) is an id some key of the ring issued for `principal`.
    ///
    /// Any byte string may be passed: nothing panics, and the MAC is compared in constant time.
    /// Fails with [`SignatureError::Malformed`] for anything not in the id format,
    /// [`UnknownKey`](SignatureError::UnknownKey) when its key id is not in the ring, and
    /// [`BadMac`](SignatureError::BadMac) when the tag does not match (altered, forged, or
    /// issued for another principal). On success, [`Verified::is_current`] says whether to
    /// [`resign`](Self::resign) it.
    pub fn verify(&self, raw: &[u8], principal: Option<&[u8]>) -> Result<Verified, SignatureError> {
        let (key_id, random, tag) = split(raw).ok_or(SignatureError::Malformed)?;
        let key = self
            .keys()
            .find(|k| k.id == key_id)
            .ok_or(SignatureError::UnknownKey)?;
        key.mac_of(&random, principal)
            .verify_truncated_left(&tag)
            .map_err(|_| SignatureError::BadMac)?;
        Ok(Verified {
            key_id,
            current: key.id == self.current.id,
            random,
        })
    }

    /// Issues the id of a verified session again under the current key, for the same
    /// `principal` it was verified with: the hub's answer to a reconnect whose id is not
    /// [`current`](Verified::is_current). The random part, and so the session, stays the same;
    /// only the key id and MAC change. For an id already signed by the current key this is that
    /// same id. Fails only as [`issue`](Self::issue) does.
    pub fn resign(
        &self,
        verified: &Verified,
        principal: Option<&[u8]>,
    ) -> Result<SessionId, IdRejection> {
        self.issue(verified.random, principal)
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(&self.others)
    }

    fn check_new(&self, key: &Key) -> Result<(), KeyError> {
        match self.keys().any(|k| k.id == key.id) {
            true => Err(KeyError::DuplicateKeyId),
            false => Ok(()),
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current_key_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

/// An id that [`KeyRing::verify`] accepted: which key signed it and its random part.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    key_id: KeyId,
    current: bool,
    random: [u8; RANDOM_LEN],
}

impl Verified {
    /// The id of the key that signed it.
    pub fn key_id(&self) -> &str {
        self.key_id.as_str()
    }

    /// `true` when the ring's current key signed it; when `false`, [`KeyRing::resign`] it.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// The random part: what identifies the session across a re-signing.
    pub fn random(&self) -> [u8; RANDOM_LEN] {
        self.random
    }
}

/// Splits `raw` into key id, random part and tag, or `None` if it is not in the id format.
fn split(raw: &[u8]) -> Option<(KeyId, [u8; RANDOM_LEN], [u8; TAG_LEN])> {
    if raw.len() > MAX_SIGNED_ID_LEN {
        return None;
    }
    // Both encoded parts have a fixed length, so the key id is whatever precedes them.
    let (head, tail) = raw.split_at_checked(raw.len().checked_sub(2 * ENCODED_LEN + 1)?)?;
    let key_id = KeyId::parse(head.strip_suffix(b".")?)?;
    let (random, tag) = tail.split_at_checked(ENCODED_LEN)?;
    Some((key_id, decode(random)?, decode(tag.strip_prefix(b".")?)?))
}

/// Decodes exactly 22 characters of canonical base64url into 16 bytes.
fn decode(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != ENCODED_LEN {
        return None;
    }
    let mut out = [0u8; 16];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut out) {
        Ok(16) => Some(out),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
