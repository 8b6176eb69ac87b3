//! The portal's keys: from configuration when given, else generated on first start into the
//! secrets directory (mode 0600) and reused after, so `cargo run` needs no setup and a restart
//! logs nobody out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::settings::{ConfigError, Settings, StoreKind};

/// 32 bytes of key material that never print.
pub type Key = SecretBox<[u8; 32]>;

/// All keys the portal uses.
pub struct Keys {
    /// Session sealing keys, the first seals.
    pub session: Vec<Key>,
    /// MAC key of CSRF tokens and device cookies.
    pub csrf: Key,
    /// Pepper of token hashes.
    pub token_pepper: Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} session keys, <redacted>)", self.session.len())
    }
}

/// Reads the configured keys, or loads/generates the missing ones. With the memory store and no
/// configured key, keys are random per process.
pub fn load(settings: &Settings) -> Result<Keys, ConfigError> {
    let s = &settings.secrets;
    let dir = settings.secrets_dir();
    let ephemeral = settings.store.kind == StoreKind::Memory && s.dir.as_os_str().is_empty();
    let obtain =
        |configured: Option<&SecretString>, key: &str, file: &str| -> Result<Key, ConfigError> {
            match configured {
                Some(value) => decode(value, key),
                None if ephemeral => Ok(random_key()),
                None => load_or_generate(&dir, file).map_err(|e| {
                    ConfigError(format!("secrets.dir: {} ({e})", dir.join(file).display()))
                }),
            }
        };
    let session = if s.session_keys.is_empty() {
        vec![obtain(None, "secrets.session_keys", "session_key")?]
    } else {
        s.session_keys
            .iter()
            .map(|k| decode(k, "secrets.session_keys"))
            .collect::<Result<_, _>>()?
    };
    Ok(Keys {
        session,
        csrf: obtain(s.csrf_key.as_ref(), "secrets.csrf_key", "csrf_key")?,
        token_pepper: obtain(
            s.token_pepper.as_ref(),
            "secrets.token_pepper",
            "token_pepper",
        )?,
    })
}

fn random_key() -> Key {
    let mut k = Box::new([0u8; 32]);
    OsRng.fill_bytes(k.as_mut());
    SecretBox::new(k)
}

fn decode(value: &SecretString, key: &str) -> Result<Key, ConfigError> {
    let bytes = STANDARD
        .decode(value.expose_secret().trim())
        .map_err(|_| ConfigError(format!("{key}: must be base64 of 32 random bytes")))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ConfigError(format!("{key}: must be base64 of exactly 32 bytes")))?;
    Ok(SecretBox::new(Box::new(array)))
}

/// Reads `dir/name`, or creates it with a fresh key. Creation is atomic and exclusive (a finished
/// temp file is hard-linked into place), so two processes starting at once agree on one key.
fn load_or_generate(dir: &Path, name: &str) -> io::Result<Key> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => return parse_file(&text),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    create_private_dir(dir)?;
    let key = random_key();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = private_file(&tmp)?;
    file.write_all(STANDARD.encode(key.expose_secret()).as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    let linked = fs::hard_link(&tmp, &path);
    fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => Ok(key),
        // Another process won the race: use its key.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            parse_file(&fs::read_to_string(&path)?)
        }
        Err(e) => Err(e),
    }
}

fn parse_file(text: &str) -> io::Result<Key> {
    decode(&SecretString::from(text.trim().to_owned()), "")
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not base64 of 32 bytes"))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_private_and_reused() {
        let dir = tempfile_dir();
        let a = load_or_generate(&dir, "k").unwrap();
        let b = load_or_generate(&dir, "k").unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn configured_keys_must_be_32_bytes() {
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert!(decode(&short, "secrets.csrf_key")
            .unwrap_err()
            .to_string()
            .contains("secrets.csrf_key"));
        assert!(decode(&SecretString::from("%%%".to_owned()), "k").is_err());
        let ok = SecretString::from(STANDARD.encode([1u8; 32]));
        assert_eq!(decode(&ok, "k").unwrap().expose_secret(), &[1u8; 32]);
    }

    #[test]
    fn keys_debug_is_redacted() {
        let keys = Keys {
            session: vec![random_key()],
            csrf: random_key(),
            token_pepper: random_key(),
        };
        assert_eq!(format!("{keys:?}"), "Keys(1 session keys, <redacted>)");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let mut bytes = [0u8; 8];
        OsRng.fill_bytes(&mut bytes);
        std::env::temp_dir()
            .join(format!("phaze-secrets-{}", u64::from_le_bytes(bytes)))
            .join("nested")
    }
}
