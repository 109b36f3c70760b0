//! Datagram authentication: HMAC-SHA256 under the shared secret, truncated to
//! [`TAG_LEN`] bytes, checked in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::settings::{SyncError, MIN_KEY_LEN};

/// Bytes of the (truncated) HMAC-SHA256 tag that ends every datagram.
pub const TAG_LEN: usize = 16;

/// The shared secret, ready to sign and verify.
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from the shared secret (at least [`MIN_KEY_LEN`] bytes).
    pub fn new(secret: &[u8]) -> Result<Self, SyncError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(SyncError::KeyTooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| SyncError::KeyTooShort { len: secret.len() })?;
        Ok(Key { mac })
    }

    /// The tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether `tag` is `data`'s tag (constant-time comparison).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_key_refused() {
        assert_eq!(
            Key::new(b"short").unwrap_err(),
            SyncError::KeyTooShort { len: 5 }
        );
    }

    #[test]
    fn tag_verifies_only_under_same_key_and_data() {
        let a = Key::new(b"0123456789abcdef").unwrap();
        let b = Key::new(b"0123456789abcdeF").unwrap();
        let tag = a.tag(b"hello");
        assert!(a.verify(b"hello", &tag));
        assert!(!a.verify(b"hellO", &tag));
        assert!(!b.verify(b"hello", &tag));
        assert!(!a.verify(b"hello", &tag[..15]));
    }
}
