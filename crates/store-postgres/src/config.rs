//! [`PgConfig`], what the portal hands over, and its validation into the settings connections are
//! made from.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::PgError;

/// How to reach PostgreSQL. `Debug` never shows the password.
///
/// TLS follows the URL's `sslmode`:
/// - `disable`: plain TCP.
/// - `prefer` (the default, as in libpq): TLS if the server offers it, else plain. Like libpq's
///   `prefer`, the certificate is not checked (encryption against passive listeners only), unless
///   `ca_file` is set, which makes every TLS connection verified.
/// - `require`: TLS or no connection, and the certificate must chain to a trusted root and name
///   the host: libpq's `verify-full`, stricter than libpq's `require`. Use it in production.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db?sslmode=require` (or libpq's `key=value` form).
    pub url: String,
    /// Schema of every table: the `search_path` of every connection, created by
    /// [`crate::Postgres::migrate`] if absent. Lets deployments (and tests) share one database.
    /// A lower-case identifier, `[a-z_][a-z0-9_]*`, at most 63 bytes, not `pg_…`. `None`: the
    /// server's default search path (`public`).
    pub schema: Option<String>,
    /// PEM file of the certificates to trust for TLS (e.g. a private CA, or the server's own
    /// self-signed certificate); when set, it replaces the public roots and turns certificate
    /// verification on for every TLS connection. `None`: the Mozilla roots of `webpki-roots`.
    pub ca_file: Option<PathBuf>,
    /// Connections per process, at least 1.
    pub pool_size: usize,
    /// Bound on making a connection: TCP, TLS, authentication and session setup together. Also
    /// bounds the health check of a pooled connection at checkout. Non-zero.
    pub connect_timeout: Duration,
    /// Bound on waiting for a free pooled connection when all are busy. Non-zero.
    pub wait_timeout: Duration,
    /// Bound the server puts on every statement and every lock wait (`statement_timeout`,
    /// `lock_timeout`), and 4x it on a transaction left idle (`idle_in_transaction_session_timeout`):
    /// a stuck query or a row lock held by a frozen process fails the request (503) instead of
    /// hanging it. Non-zero.
    pub query_timeout: Duration,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &Redacted(&self.url))
            .field("schema", &self.schema)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// A URL shown as what it connects to, without its password (parsed, not pattern-matched, so no
/// spelling of the password can slip through).
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(c) = tokio_postgres::Config::from_str(self.0) else {
            return f.write_str("<unparsable URL>");
        };
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
        write!(
            f,
            "\"postgres://{}{}@{}:{}/{}?sslmode={}\"",
            c.get_user().unwrap_or(""),
            if c.get_password().is_some() {
                ":<redacted>"
            } else {
                ""
            },
            hosts.join(","),
            ports.join(","),
            c.get_dbname().unwrap_or(""),
            match c.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => "disable",
                tokio_postgres::config::SslMode::Require => "require",
                _ => "prefer",
            },
        )
    }
}

/// The pool's bounds, all finite.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Waiting for a free connection.
    pub(crate) wait: Duration,
    /// Making a connection, end to end.
    pub(crate) create: Duration,
    /// The health check of a pooled connection at checkout.
    pub(crate) recycle: Duration,
    /// Statements and lock waits, enforced by the server.
    pub(crate) query: Duration,
}

/// A validated [`PgConfig`].
pub(crate) struct Settings {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) schema: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeouts: Timeouts,
}

/// How long an idle connection waits before TCP keepalive probes start, unless the URL says: a
/// database that vanished without closing the socket is noticed within about a minute, not the
/// kernel's two hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
/// How long sent data may stay unacknowledged before the kernel drops the connection, unless the
/// URL says (`tcp_user_timeout`): a query to a host that went away fails instead of hanging.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

impl PgConfig {
    pub(crate) fn validate(&self) -> Result<Settings, PgError> {
        if let Some(name) = &self.schema {
            check_identifier(name).map_err(|reason| PgError::InvalidSchema {
                name: name.clone(),
                reason,
            })?;
        }
        if self.pool_size == 0 {
            return Err(PgError::InvalidSetting("pool_size must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(PgError::InvalidSetting("connect_timeout must be non-zero"));
        }
        if self.wait_timeout.is_zero() {
            return Err(PgError::InvalidSetting("wait_timeout must be non-zero"));
        }
        if self.query_timeout.as_millis() == 0 {
            return Err(PgError::InvalidSetting(
                "query_timeout must be at least a millisecond",
            ));
        }
        let mut pg = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| PgError::InvalidUrl(Box::new(e)))?;
        if pg.get_hosts().is_empty() {
            return Err(PgError::InvalidSetting("the URL names no host"));
        }
        // The URL may ask for a shorter socket-level timeout; the whole connection is bounded by
        // `connect_timeout` in any case.
        if pg
            .get_connect_timeout()
            .is_none_or(|t| *t > self.connect_timeout)
        {
            pg.connect_timeout(self.connect_timeout);
        }
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if pg.get_keepalives_idle() > KEEPALIVES_IDLE && !url_sets(&self.url, "keepalives_idle") {
            pg.keepalives_idle(KEEPALIVES_IDLE);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("phaze");
        }
        Ok(Settings {
            pg,
            schema: self.schema.clone(),
            ca_file: self.ca_file.clone(),
            timeouts: Timeouts {
                wait: self.wait_timeout,
                create: self.connect_timeout,
                recycle: self.connect_timeout,
                query: self.query_timeout,
            },
        })
    }
}

/// Whether the URL mentions option `key` (as `key=`), so an explicit choice is kept.
fn url_sets(url: &str, key: &str) -> bool {
    url.match_indices(key)
        .any(|(i, _)| url[i + key.len()..].starts_with('='))
}

/// Accepts the identifiers that need no quoting and mean the same quoted or not: lower-case ASCII
/// letters, digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's limit), and
/// not `pg_…` (reserved for the system).
pub(crate) fn check_identifier(name: &str) -> Result<(), &'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err("empty"),
        Some(b'a'..=b'z' | b'_') => {}
        Some(_) => return Err("must start with a lower-case letter or `_`"),
    }
    if !bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')) {
        return Err("only lower-case ASCII letters, digits and `_` are allowed");
    }
    if name.len() > 63 {
        return Err("longer than 63 bytes");
    }
    if name.starts_with("pg_") {
        return Err("`pg_` names are reserved by PostgreSQL");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
