//! The SMTP relay of `phaze_mail::Courier`: lettre over rustls. Implicit TLS, or STARTTLS that is
//! required (a relay that does not offer it is refused, never talked to in clear); plain only to a
//! relay on this machine. Certificates are checked against the public roots, or only against a
//! configured CA. Authentication, a timeout per step and a deadline on the whole delivery. An SMTP
//! 5xx is a permanent refusal (a dead letter at once); anything else is temporary (retried).

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use phaze_auth::OutgoingMail;
use serde::Deserialize;
use std::path::PathBuf;

use phaze_mail::{compose, Relay, RelayError};

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte ("implicit TLS", SMTPS; port 465 by default).
    Tls,
    /// Plain first, then `STARTTLS`, required: a relay that does not offer it is refused, never
    /// talked to in clear (port 587 by default).
    #[default]
    Starttls,
    /// No TLS: only for a relay on this machine (`localhost`, `127.0.0.1`, `::1`; port 25).
    None,
}

/// `[mail.smtp]`. Field names are the configuration keys; unknown keys are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The relay's host name (also the name its certificate must carry). Empty: no relay, and
    /// mail stays in the outbox directory.
    pub host: String,
    /// Its port; 0: 465, 587 or 25 by `security`.
    pub port: u16,
    /// `tls`, `starttls` (the default) or `none`.
    pub security: SmtpSecurity,
    /// The user name to authenticate as; empty: no authentication.
    pub username: String,
    /// Its password.
    pub password: secrecy::SecretString,
    /// Seconds to connect, and for each command's answer (10).
    pub timeout_secs: u32,
    /// A private CA (PEM) trusted instead of the public roots.
    pub ca_file: PathBuf,
}

/// Settings that cannot work: which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("mail.smtp.{key}: {why}")]
pub struct SmtpSettingsError {
    /// The key under `mail.smtp`.
    pub key: &'static str,
    /// What is wrong.
    pub why: String,
}

/// Delivers over SMTP.
#[derive(Clone)]
pub struct SmtpRelay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// A bound on one whole delivery, whatever the relay does between its answers.
    deadline: std::time::Duration,
}

impl std::fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

impl SmtpRelay {
    /// A relay as `settings` say, sending as `from`. Refuses `security = "none"` to a host that
    /// is not this machine (credentials and mail would cross the network in clear), and a CA
    /// file that cannot be read or holds no certificate.
    pub fn new(settings: &SmtpSettings, from: Mailbox) -> Result<Self, SmtpSettingsError> {
        use secrecy::ExposeSecret;
        let fail = |key, why: String| SmtpSettingsError { key, why };
        let host = settings.host.trim();
        if host.is_empty() {
            return Err(fail("host", "is empty".into()));
        }
        let port = match (settings.port, settings.security) {
            (0, SmtpSecurity::Tls) => 465,
            (0, SmtpSecurity::Starttls) => 587,
            (0, SmtpSecurity::None) => 25,
            (p, _) => p,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
        if settings.security == SmtpSecurity::None {
            if !is_local(host) {
                return Err(fail(
                    "security",
                    format!("\"none\" sends mail and credentials in clear: only for a relay on this machine, not {host}"),
                ));
            }
        } else {
            let mut tls = TlsParameters::builder(host.to_owned());
            if !settings.ca_file.as_os_str().is_empty() {
                let pem = std::fs::read(&settings.ca_file)
                    .map_err(|e| fail("ca_file", format!("{}: {e}", settings.ca_file.display())))?;
                let ca = Certificate::from_pem(&pem)
                    .map_err(|e| fail("ca_file", format!("{}: {e}", settings.ca_file.display())))?;
                tls = tls
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(ca);
            }
            let params = tls
                .build_rustls()
                .map_err(|e| fail("ca_file", e.to_string()))?;
            builder = builder.tls(match settings.security {
                SmtpSecurity::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            ));
        }
        let timeout = match settings.timeout_secs {
            0 => 10,
            s => s,
        };
        let step = std::time::Duration::from_secs(timeout.into());
        let transport = builder.timeout(Some(step)).build();
        Ok(Self {
            transport,
            from,
            // Connect, TLS, EHLO, AUTH, MAIL, RCPT, DATA, QUIT: each bounded by lettre; the whole
            // by this, so a relay that trickles bytes cannot hold the courier.
            deadline: step * 6,
        })
    }
}

#[async_trait]
impl Relay for SmtpRelay {
    async fn deliver(&self, id: &str, mail: &OutgoingMail) -> Result<(), RelayError> {
        let message =
            compose(&self.from, mail, id).map_err(|e| RelayError::Permanent(e.to_string()))?;
        let sent = tokio::time::timeout(self.deadline, self.transport.send(message)).await;
        let Ok(sent) = sent else {
            return Err(RelayError::Temporary(format!(
                "no delivery within {} s",
                self.deadline.as_secs()
            )));
        };
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(RelayError::Permanent(chain(&e))),
            Err(e) => Err(RelayError::Temporary(chain(&e))),
        }
    }
}

/// An error and its causes on one line (lettre's own message says little without them).
fn chain(e: &dyn std::error::Error) -> String {
    let causes = std::iter::successors(Some(e), |e| e.source());
    causes
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
