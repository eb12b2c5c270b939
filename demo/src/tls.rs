//! `--tls`, the hyper demo's HTTPS: rustls (through tokio-rustls, on the `ring` provider)
//! offering HTTP/2 and HTTP/1.1 through ALPN. A browser opens at most six HTTP/1.1
//! connections per origin and each tab's event stream holds one, so a seventh tab cannot
//! even load its page; browsers speak HTTP/2 only over TLS, and there every tab of an origin
//! shares one connection.
//!
//! The certificate is `--cert FILE --key FILE` (PEM: the chain, leaf first, and its private
//! key), or one made at start, self-signed for `localhost`, `127.0.0.1` and `::1`. Either
//! way its SHA-256 fingerprint goes to stderr, to compare with what a browser shows.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::options::Tls;

/// The names the self-signed certificate is valid for.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The rustls configuration for `tls`, having printed the certificate's fingerprint to
/// stderr; or what is wrong with the certificate or key, for the user. (`ServeConfig::tls`
/// offers HTTP/2 through ALPN.)
pub fn server_config(tls: &Tls) -> Result<ServerConfig, String> {
    let (chain, key) = match tls {
        Tls::SelfSigned => self_signed()?,
        Tls::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
    };
    let leaf = chain
        .first()
        .ok_or("--cert: the file holds no certificate")?;
    match tls {
        Tls::SelfSigned => eprintln!(
            "demo: TLS with a self-signed certificate for {} (browsers warn about it), \
             SHA-256 fingerprint {}",
            SELF_SIGNED_NAMES.join(", "),
            fingerprint(leaf)
        ),
        Tls::Files { cert, .. } => eprintln!(
            "demo: TLS with the certificate of {}, SHA-256 fingerprint {}",
            cert.display(),
            fingerprint(leaf)
        ),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS: the certificate and the key do not go together: {e}"))
}

/// A certificate and key made now, self-signed for [`SELF_SIGNED_NAMES`].
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let names = SELF_SIGNED_NAMES.map(str::to_owned).to_vec();
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("TLS: cannot make a self-signed certificate: {e}"))?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], PrivateKeyDer::Pkcs8(key)))
}

/// The certificates of a PEM file, leaf first.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--cert {}: {e}", path.display()))
}

/// The private key of a PEM file (PKCS #8, PKCS #1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("--key {}: {e}", path.display()))
}

/// A certificate's SHA-256 fingerprint as browsers and `openssl x509 -fingerprint` show it:
/// upper-case hex, bytes separated by colons.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
