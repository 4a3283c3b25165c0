//! Signed click-through tokens (`ct`): a link in an email can name its contact so the
//! visit is attributed, and because the token carries an HMAC nobody can forge one for
//! another contact (the spoofing Mautic warns about).
//!
//! Format: `v1.<contact id>.<expiry, unix seconds>.<signature>` where the signature is
//! base64url(HMAC-SHA256(secret, "v1.<id>.<expiry>")).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(crate) fn sign(secret: &[u8], payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(payload.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn issue(secret: &[u8], contact_id: i64, expires_unix: i64) -> String {
    let payload = format!("v1.{contact_id}.{expires_unix}");
    let sig = sign(secret, &payload);
    format!("{payload}.{sig}")
}

/// The contact a token names, if the signature is right and it has not expired.
pub fn verify(secret: &[u8], token: &str, now_unix: i64) -> Option<i64> {
    if token.len() > 200 {
        return None;
    }
    let mut parts = token.splitn(4, '.');
    let (version, id, expiry, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "v1" {
        return None;
    }
    let contact_id: i64 = id.parse().ok().filter(|i| *i > 0)?;
    let expires: i64 = expiry.parse().ok()?;
    let expected = sign(secret, &format!("v1.{id}.{expiry}"));
    let ok: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into();
    (ok && expires >= now_unix).then_some(contact_id)
}

/// A new device id: 128 random bits and a 64-bit signature, 48 hex characters. The
/// signature lets a hit prove its device id is one we handed out without a database
/// lookup (and before the first hit with it is even applied); anything else is looked up.
pub fn issue_device_id(secret: &[u8]) -> String {
    let random = super::random_id();
    let tag = device_tag(secret, &random);
    format!("{random}{tag}")
}

/// Whether `id` was handed out by `issue_device_id` with this secret.
pub fn is_issued_device_id(secret: &[u8], id: &str) -> bool {
    if id.len() != 48 {
        return false;
    }
    let (random, tag) = id.split_at(32);
    let expected = device_tag(secret, random);
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), tag.as_bytes()).into()
}

fn device_tag(secret: &[u8], random: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(b"device.v1.");
    mac.update(random.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_ids() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let id = issue_device_id(secret);
        assert_eq!(id.len(), 48);
        assert!(super::super::params::valid_device_id(&id));
        assert!(is_issued_device_id(secret, &id));
        assert!(!is_issued_device_id(b"another secret", &id));
        let mut tampered = id.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        assert!(!is_issued_device_id(
            secret,
            &String::from_utf8(tampered).unwrap()
        ));
        assert!(!is_issued_device_id(secret, &id[..32]));
        assert_ne!(issue_device_id(secret), id);
    }

    use super::*;

    #[test]
    fn tokens() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = issue(secret, 42, 2_000_000_000);
        assert_eq!(verify(secret, &t, 1_900_000_000), Some(42));
        assert_eq!(verify(secret, &t, 2_000_000_001), None, "expired");
        assert_eq!(
            verify(b"another secret", &t, 1_900_000_000),
            None,
            "wrong key"
        );
        let forged = t.replacen("v1.42.", "v1.43.", 1);
        assert_eq!(verify(secret, &forged, 1_900_000_000), None, "tampered id");
        for junk in [
            "",
            "v1",
            "v1.42",
            "v1.42.2000000000",
            "v2.42.2000000000.x",
            "v1.-1.2000000000.x",
            "YToxOntzOjQ6ImxlYWQiO30=",
        ] {
            assert_eq!(verify(secret, junk, 0), None, "{junk}");
        }
    }
}
