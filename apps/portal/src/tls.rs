//! HTTPS served directly: rustls (TLS 1.3 and 1.2 only, the *ring* provider's AEAD suites with
//! forward secrecy), the certificate read from `http.tls.cert_file` / `key_file` and read again
//! when either file changes, so a renewed certificate takes effect without a restart. A file that
//! does not parse keeps the certificate in use and says so in the log.

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

/// The certificate in use, and the files it came from.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the two files when last read.
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The certificate chain and key of the two files, checked against each other.
fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    use anyhow::Context as _;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("http.tls.cert_file: cannot read {}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("http.tls.cert_file: {} is not PEM", cert_file.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "http.tls.cert_file: {} holds no certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
        format!(
            "http.tls.key_file: no private key in {}",
            key_file.display()
        )
    })?;
    let key = CertifiedKey::from_der(certs, key, &ring::default_provider()).with_context(|| {
        format!(
            "http.tls: the key in {} does not fit the certificate in {}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Arc::new(key))
}

impl ReloadingCert {
    /// Reads the two files; fails (the process does not start) if they do not make a certificate.
    pub fn open(cert_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let seen = (modified(cert_file), modified(key_file));
        let current = load(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        })
    }

    /// Reads the files again if either changed since; `true` if a new certificate is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = (modified(&self.cert_file), modified(&self.key_file));
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        match load(&self.cert_file, &self.key_file) {
            Ok(key) => {
                *seen = now;
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
                tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Half a renewal (the certificate written, the key not yet): try again next time.
                tracing::warn!(error = %format!("{e:#}"), "TLS certificate not reloaded; the old one stays");
                false
            }
        }
    }

    /// The rustls configuration serving this certificate: TLS 1.3 and 1.2, no client auth.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<ServerConfig> {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}
