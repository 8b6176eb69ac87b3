use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

use crate::SessionKey;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// One 256-bit XChaCha20-Poly1305 key. `Debug` prints only its public key id.
#[derive(Clone)]
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    id: [u8; KEY_ID_LEN],
}

impl SealingKey {
    /// Wraps 32 bytes of key material (from configuration or the generated key file).
    pub fn new(material: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"phaze-session-sealing-key-id")
            .chain_update(material)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            cipher: XChaCha20Poly1305::new(material.into()),
            id,
        }
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey(id={:02x?}, <redacted>)", self.id)
    }
}

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No configured key has the blob's key id, or the blob was tampered with, truncated, moved to
    /// another store key, or sealed under a key that is no longer configured.
    #[error("sealed session data could not be opened")]
    Open,
    /// The list of keys was empty.
    #[error("no sealing key configured")]
    NoKey,
}

/// Seals session data at rest. The first key seals; every key opens, so an operator rotates by
/// putting a new key first and dropping the old one after the longest session lifetime.
///
/// The store key is the AEAD's associated data, so a sealed blob copied under another key fails to
/// open: nobody with write access to the store can graft one user's session onto another's id.
#[derive(Clone, Debug)]
pub struct Sealer {
    keys: Vec<SealingKey>,
}

impl Sealer {
    /// Fails with [`SealError::NoKey`] if `keys` is empty.
    pub fn new(keys: Vec<SealingKey>) -> Result<Self, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKey);
        }
        Ok(Self { keys })
    }

    /// `version || key id || nonce || ciphertext+tag`, with a fresh random 192-bit nonce.
    pub fn seal(&self, key: &SessionKey, plaintext: &[u8]) -> Vec<u8> {
        self.seal_bound(key.as_bytes(), plaintext)
    }

    /// Seals `plaintext` bound to `context`, the AEAD's associated data: the blob opens only with
    /// the same context. Other secrets kept at rest under the session keys (a TOTP secret, bound
    /// to its account) use this with a context of their own; a session's context is its 32-byte
    /// store key, so a blob can never pass for the other kind.
    pub fn seal_bound(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let sealing = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        // XChaCha20-Poly1305 encryption only fails for messages beyond 256 GiB.
        let ciphertext = sealing
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&sealing.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Whether older keys are configured beside the newest: only then can anything stored be
    /// sealed again (a blob under a key not in the list does not open at all).
    pub fn has_older_keys(&self) -> bool {
        self.keys.len() > 1
    }

    /// Whether `sealed` was sealed under the newest key (the first of the list): what a key
    /// rotation re-seals is everything for which this is `false`.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.len() >= HEADER_LEN
            && sealed[0] == VERSION
            && sealed[1..1 + KEY_ID_LEN] == self.keys[0].id
    }

    /// Opens a blob sealed by [`Sealer::seal`] under any configured key.
    pub fn open(&self, key: &SessionKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_bound(key.as_bytes(), sealed)
    }

    /// Opens a blob sealed by [`Sealer::seal_bound`] with the same `context`.
    pub fn open_bound(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SealError::Open);
        }
        let (key_id, rest) = sealed[1..].split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.keys
            .iter()
            .filter(|k| k.id == key_id)
            .find_map(|k| {
                let payload = Payload {
                    msg: ciphertext,
                    aad: context,
                };
                k.cipher.decrypt(XNonce::from_slice(nonce), payload).ok()
            })
            .ok_or(SealError::Open)
    }
}
