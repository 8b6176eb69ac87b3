//! [`PaymentGateway`] over Stripe's HTTPS API, for services on actix-web.
//!
//! - Every `POST` carries the request's [`phaze_payments::IdempotencyKey`] as `Idempotency-Key`,
//!   the same on each retry, so Stripe creates one session however many times the request is sent
//!   (a retry after a lost answer, a double-submitted form, two processes).
//! - Retries, with exponential backoff, only where a retry can help: a network error or timeout,
//!   a `5xx`, a `409` (the same idempotency key in flight) or a `429` (unless Stripe says
//!   `Stripe-Should-Retry: false`). Any other `4xx` is a [`GatewayError::Refused`] at once.
//! - TLS by rustls with the *ring* provider and the WebPKI roots; `http://` bases are accepted
//!   only for loopback addresses (tests, a local fake).
//! - One HTTP client per worker thread (actix's client is not `Send`), so connections are reused.
//!
//! **Invariant:** the secret key is only ever sent to the configured base URL, never logged.
//!
//! ```
//! use phaze_stripe::{StripeConfig, StripeGateway};
//! use secrecy::SecretString;
//!
//! let config = StripeConfig::new(SecretString::from("sk_test_…"));
//! assert!(StripeGateway::new(config.clone()).is_ok());
//! // The key never goes out in clear text, nor to another host by mistake.
//! let plain = StripeConfig { api_base: "http://api.stripe.com".into(), ..config };
//! assert!(StripeGateway::new(plain).is_err());
//! ```
#![warn(missing_docs)]

use async_trait::async_trait;
use phaze_payments::{
    BillingPortalRequest, CheckoutRequest, GatewayError, Hosted, IdempotencyKey, PaymentGateway,
};
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Stripe's API.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// Why a [`StripeGateway`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not an `https://` URL (or `http://` to a loopback address), or one with a path, query or
    /// credentials.
    #[error("invalid Stripe API base URL: {0}")]
    BaseUrl(String),
    /// The TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Settings of a [`StripeGateway`].
#[derive(Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com`, or a fake's address in tests.
    pub api_base: String,
    /// `sk_live_…` / `sk_test_…` / a restricted key.
    pub secret_key: SecretString,
    /// Per attempt (10 s).
    pub timeout: Duration,
    /// Retries after the first attempt (2).
    pub retries: u32,
    /// The first retry waits this long, each next one twice as long (250 ms).
    pub backoff: Duration,
}

impl StripeConfig {
    /// Stripe's API with `secret_key` and the defaults above.
    pub fn new(secret_key: SecretString) -> Self {
        Self {
            api_base: STRIPE_API.to_owned(),
            secret_key,
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// The gateway: clone it freely (it holds its settings and TLS configuration).
#[derive(Clone, Debug)]
pub struct StripeGateway {
    base: String,
    config: StripeConfig,
    tls: Arc<rustls::ClientConfig>,
}

thread_local! {
    /// This thread's client: actix's client is per thread, and keeps its connections there.
    static CLIENT: RefCell<Option<(usize, awc::Client)>> = const { RefCell::new(None) };
}

#[derive(serde::Deserialize)]
struct Session {
    id: String,
    url: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// One attempt's failure, and whether another attempt may help.
enum Attempt {
    Retry(GatewayError),
    Stop(GatewayError),
}

impl StripeGateway {
    /// A gateway with `config`.
    ///
    /// # Errors
    /// [`ConfigError`] for a base URL that is not `https://host[:port]` (or `http://` to a
    /// loopback address).
    pub fn new(config: StripeConfig) -> Result<Self, ConfigError> {
        let base = check_base(&config.api_base)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
        Ok(Self {
            base,
            config,
            tls: Arc::new(tls),
        })
    }

    fn client(&self) -> awc::Client {
        // One client per thread and TLS configuration (gateways with other settings get theirs).
        let id = Arc::as_ptr(&self.tls) as usize;
        CLIENT.with(|cell| {
            let mut slot = cell.borrow_mut();
            match slot.as_ref() {
                Some((owner, client)) if *owner == id => client.clone(),
                _ => {
                    let client = awc::Client::builder()
                        .connector(awc::Connector::new().rustls_0_23(self.tls.clone()))
                        .disable_redirects()
                        .finish();
                    *slot = Some((id, client.clone()));
                    client
                }
            }
        })
    }

    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        key: &IdempotencyKey,
    ) -> Result<Hosted, GatewayError> {
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.attempt(path, form, key).await {
                Ok(hosted) => return Ok(hosted),
                Err(Attempt::Stop(e)) => return Err(e),
                Err(Attempt::Retry(e)) if attempt >= self.config.retries => return Err(e),
                Err(Attempt::Retry(e)) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, path, "Stripe request failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
            }
        }
    }

    async fn attempt(
        &self,
        path: &str,
        form: &[(String, String)],
        key: &IdempotencyKey,
    ) -> Result<Hosted, Attempt> {
        let unavailable = |e: String| Attempt::Retry(GatewayError::Unavailable(e.into()));
        let mut res = self
            .client()
            .post(format!("{}{path}", self.base))
            .timeout(self.config.timeout)
            .bearer_auth(self.config.secret_key.expose_secret())
            .insert_header(("Idempotency-Key", key.as_str()))
            .send_form(&form)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = res.status();
        let should_retry = res
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true");
        let body = res
            .body()
            .limit(256 * 1024)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if status.is_success() {
            let session: Session = serde_json::from_slice(&body)
                .map_err(|e| Attempt::Stop(GatewayError::Invalid(e.to_string())))?;
            let url = session
                .url
                .filter(|u| u.starts_with("https://"))
                .ok_or_else(|| {
                    Attempt::Stop(GatewayError::Invalid("no https url in the session".into()))
                })?;
            return Ok(Hosted {
                id: session.id,
                url,
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| {
                let code = b.error.code.unwrap_or_default();
                format!("{code} {}", b.error.message.unwrap_or_default())
            })
            .unwrap_or_default();
        // As Stripe's libraries do: 409 (the idempotency key is in use by a request in flight)
        // and 429 (rate limited) are retried too, and are "unavailable", not refusals.
        let transient =
            status.is_server_error() || status.as_u16() == 409 || status.as_u16() == 429;
        let retry = should_retry.unwrap_or(transient);
        let error = if transient {
            GatewayError::Unavailable(format!("{status}: {message}").into())
        } else {
            GatewayError::Refused {
                status: status.as_u16(),
                message,
            }
        };
        Err(if retry {
            Attempt::Retry(error)
        } else {
            Attempt::Stop(error)
        })
    }
}

#[async_trait(?Send)]
impl PaymentGateway for StripeGateway {
    async fn checkout(&self, request: &CheckoutRequest) -> Result<Hosted, GatewayError> {
        self.post(
            "/v1/checkout/sessions",
            &request.form(),
            &request.idempotency_key,
        )
        .await
    }

    async fn billing_portal(&self, request: &BillingPortalRequest) -> Result<Hosted, GatewayError> {
        self.post(
            "/v1/billing_portal/sessions",
            &request.form(),
            &request.idempotency_key,
        )
        .await
    }
}

/// `https://host[:port]`, or `http://` to a loopback address; no path, query or credentials.
fn check_base(base: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::BaseUrl(base.to_owned());
    let url = url::Url::parse(base).map_err(|_| bad())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(bad()),
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(base.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_bases_without_paths_are_taken() {
        for good in [
            "https://api.stripe.com",
            "https://api.stripe.com/",
            "http://127.0.0.1:12111",
            "http://localhost:8080",
            "http://[::1]:9",
        ] {
            assert!(check_base(good).is_ok(), "{good}");
        }
        for bad in [
            "http://api.stripe.com",
            "ftp://api.stripe.com",
            "https://user:pw@api.stripe.com",
            "https://api.stripe.com/v1",
            "https://api.stripe.com?x=1",
            "api.stripe.com",
            "",
            "http://10.0.0.1",
        ] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_key_never_prints() {
        let c = StripeConfig::new(SecretString::from("sk_test_secret"));
        assert!(!format!("{c:?}").contains("sk_test_secret"));
        let g = StripeGateway::new(c)
            .map(|g| format!("{g:?}"))
            .unwrap_or_default();
        assert!(!g.is_empty() && !g.contains("sk_test_secret"));
    }
}
