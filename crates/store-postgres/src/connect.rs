//! Making one connection: TCP, TLS by `sslmode` (rustls with *ring*), authentication, then the
//! session setup (`search_path`), all under one timeout.

use diesel::ConnectionError;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Settings, Timeouts};
use crate::{BoxError, PgError};

/// Everything needed to open a connection, shared by the pool's setup callback and `migrate`.
pub(crate) struct Connector {
    pg: tokio_postgres::Config,
    pub(crate) schema: Option<String>,
    pub(crate) timeouts: Timeouts,
    /// For `require`, and for `prefer` when a CA file is configured.
    verified: MakeRustlsConnect,
    /// For `prefer` without a CA file: libpq's opportunistic encryption.
    opportunistic: MakeRustlsConnect,
}

impl Connector {
    pub(crate) fn new(settings: Settings) -> Result<Self, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &settings.ca_file {
            Some(path) => roots_from_file(path).map_err(|source| PgError::CaFile {
                path: path.clone(),
                source,
            })?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        // The *ring* provider supports the safe default versions: this cannot fail in practice.
        let tls_error =
            |_: rustls::Error| PgError::InvalidSetting("the TLS provider supports no safe version");
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let opportunistic = if settings.ca_file.is_some() {
            verified.clone()
        } else {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(tls_error)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth()
        };
        Ok(Self {
            pg: settings.pg,
            schema: settings.schema,
            timeouts: settings.timeouts,
            verified: MakeRustlsConnect::new(verified),
            opportunistic: MakeRustlsConnect::new(opportunistic),
        })
    }

    /// A new connection, set up for this crate's queries, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let limit = self.timeouts.create;
        match tokio::time::timeout(limit, self.connect_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectionError::BadConnection(format!(
                "no connection within {} ms",
                limit.as_millis()
            ))),
        }
    }

    async fn connect_unbounded(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let failed = |e: tokio_postgres::Error| ConnectionError::BadConnection(describe(&e));
        let mut conn = match self.pg.get_ssl_mode() {
            SslMode::Disable => {
                let (client, connection) = self.pg.connect(NoTls).await.map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await?
            }
            SslMode::Require => {
                let (client, connection) = self
                    .pg
                    .connect(self.verified.clone())
                    .await
                    .map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await?
            }
            SslMode::Prefer => {
                let (client, connection) = self
                    .pg
                    .connect(self.opportunistic.clone())
                    .await
                    .map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await?
            }
            // A mode this crate does not know (the enum is non-exhaustive) never falls back to
            // an unverified connection.
            _ => {
                return Err(ConnectionError::BadConnection(
                    "unsupported sslmode: use disable, prefer or require".into(),
                ))
            }
        };
        if let Some(schema) = &self.schema {
            // `schema` passed `check_identifier`: quoting cannot be escaped from.
            conn.batch_execute(&format!("SET search_path TO \"{schema}\""))
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        let ms = self.timeouts.query.as_millis();
        conn.batch_execute(&format!(
            "SET statement_timeout = {ms}; SET lock_timeout = {ms}; \
             SET idle_in_transaction_session_timeout = {}",
            ms.saturating_mul(4)
        ))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    }
}

/// The driver's error with its causes, e.g. "error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer": what failed (refused, TLS, authentication), never the password,
/// which no driver message contains.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The certificates of a PEM file, as the only roots.
fn roots_from_file(path: &Path) -> Result<RootCertStore, BoxError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)? {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

/// libpq's `sslmode=prefer`: any certificate is accepted, so the connection is encrypted but the
/// server is not authenticated. The handshake signatures are still checked (they prove the peer
/// holds the key of the certificate it sent, which costs nothing to keep).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
