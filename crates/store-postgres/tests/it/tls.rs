//! TLS against the test server, when it has `ssl = on` (Debian's default, with its "snakeoil"
//! self-signed certificate for `localhost`). Encryption is proved from the server's side:
//! `pg_stat_ssl` of the backends serving this pool, found by their `application_name`.
//!
//! The harness checks [`tls_on`] and [`certificate_readable`] before any test runs: without TLS
//! on the server these tests are ignored, except under `CI=true`, where they fail (CI's server
//! is Debian's, which has TLS on). The certificate checks also need the server's certificate
//! file to be readable here and the test URL to point at this machine; that is a property of
//! where the server runs, not of this code.

use phaze_store_postgres::{PgConfig, PgError, Postgres};
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::Client;

use crate::support::{self, chain};

struct Server {
    admin: Client,
    user: String,
    port: u16,
    dbname: String,
    loopback: bool,
}

/// The harness's check: the test server has TLS on, and the URL has no password.
pub(crate) fn tls_on() -> Result<(), String> {
    support::block_on(server()).map(drop)
}

/// The harness's check: the server is this machine and its certificate is readable here.
pub(crate) fn certificate_readable() -> Result<(), String> {
    support::block_on(async { server().await?.certificate().await }).map(drop)
}

/// The server, if it has TLS on (else why not).
async fn server() -> Result<Server, String> {
    let admin = support::admin().await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        return Err("the PostgreSQL server has ssl = off".to_owned());
    }
    let config: tokio_postgres::Config = phaze_testkit::database_url().parse().unwrap();
    if config.get_password().is_some() {
        return Err("the TLS tests build their own URLs and take none with a password".to_owned());
    }
    let loopback = config.get_hosts().iter().all(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => false,
    });
    Ok(Server {
        admin,
        user: config.get_user().unwrap_or("postgres").to_owned(),
        port: config.get_ports().first().copied().unwrap_or(5432),
        dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
        loopback,
    })
}

impl Server {
    fn url(&self, host: &str, mode: &str, app: &str) -> String {
        format!(
            "postgres://{}@{host}:{}/{}?sslmode={mode}&application_name={app}",
            self.user, self.port, self.dbname
        )
    }

    /// The server's certificate file, if this process can read it and the server is this machine
    /// (else why not).
    async fn certificate(&self) -> Result<PathBuf, String> {
        if !self.loopback {
            return Err("the test server is not on this machine".to_owned());
        }
        let file: String = self
            .admin
            .query_one("SHOW ssl_cert_file", &[])
            .await
            .unwrap()
            .get(0);
        let mut path = PathBuf::from(file);
        if path.is_relative() {
            let data: String = self
                .admin
                .query_one("SHOW data_directory", &[])
                .await
                .unwrap()
                .get(0);
            path = PathBuf::from(data).join(path);
        }
        if std::fs::read(&path).is_err() {
            return Err(format!(
                "cannot read the server's certificate {}",
                path.display()
            ));
        }
        Ok(path)
    }

    /// `(ssl, version)` of every backend serving `app`.
    async fn encryption(&self, app: &str) -> Vec<(bool, Option<String>)> {
        self.admin
            .query(
                "SELECT s.ssl, s.version FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

fn pg(url: String, ca_file: Option<PathBuf>) -> Postgres {
    Postgres::new(&PgConfig {
        url,
        schema: None,
        ca_file,
        pool_size: 2,
        connect_timeout: Duration::from_secs(5),
        wait_timeout: Duration::from_secs(5),
        query_timeout: std::time::Duration::from_secs(5),
    })
    .unwrap()
}

/// A name to find this test's backends by.
fn app_name(test: &str) -> String {
    format!("phaze_tls_{test}_{:016x}", rand::random::<u64>())
}

pub(crate) async fn require_with_the_servers_certificate_is_encrypted_and_verified() {
    let server = server().await.unwrap();
    let cert = server.certificate().await.unwrap();
    let app = app_name("verified");
    let pg = pg(server.url("localhost", "require", &app), Some(cert));
    pg.ping().await.unwrap();
    let seen = server.encryption(&app).await;
    assert!(!seen.is_empty());
    for (ssl, version) in seen {
        assert!(ssl);
        assert!(version.is_some_and(|v| v.starts_with("TLSv1.")));
    }
}

pub(crate) async fn require_refuses_a_certificate_from_an_unknown_issuer() {
    let server = server().await.unwrap();
    // The public roots do not vouch for a self-signed certificate.
    let app = app_name("unknown_issuer");
    let e = pg(server.url("localhost", "require", &app), None)
        .ping()
        .await
        .unwrap_err();
    assert!(chain(&e).contains("UnknownIssuer"), "{}", chain(&e));
    assert!(
        server.encryption(&app).await.is_empty(),
        "no session was started"
    );
}

pub(crate) async fn require_refuses_a_certificate_for_another_name() {
    let server = server().await.unwrap();
    let cert = server.certificate().await.unwrap();
    // Debian's certificate names `localhost`, not 127.0.0.1.
    let app = app_name("wrong_name");
    let e = pg(server.url("127.0.0.1", "require", &app), Some(cert))
        .ping()
        .await
        .unwrap_err();
    assert!(chain(&e).contains("not valid for name"), "{}", chain(&e));
}

pub(crate) async fn prefer_encrypts_without_verifying_and_disable_does_not_encrypt() {
    let server = server().await.unwrap();
    // Each pool stays alive (and its connection open) while the server is asked about it.
    let app = app_name("prefer");
    let prefer = pg(server.url("127.0.0.1", "prefer", &app), None);
    prefer.ping().await.unwrap();
    let seen = server.encryption(&app).await;
    assert!(
        !seen.is_empty() && seen.iter().all(|(ssl, _)| *ssl),
        "{seen:?}"
    );

    let app = app_name("disable");
    let disable = pg(server.url("127.0.0.1", "disable", &app), None);
    disable.ping().await.unwrap();
    let seen = server.encryption(&app).await;
    assert!(
        !seen.is_empty() && seen.iter().all(|(ssl, _)| !*ssl),
        "{seen:?}"
    );
}

pub(crate) async fn a_ca_file_turns_verification_on_for_prefer() {
    let server = server().await.unwrap();
    let cert = server.certificate().await.unwrap();
    let app = app_name("prefer_ca");
    let verified = pg(server.url("localhost", "prefer", &app), Some(cert.clone()));
    verified.ping().await.unwrap();
    let seen = server.encryption(&app).await;
    assert!(
        !seen.is_empty() && seen.iter().all(|(ssl, _)| *ssl),
        "{seen:?}"
    );
    let e = pg(server.url("127.0.0.1", "prefer", &app), Some(cert))
        .ping()
        .await
        .unwrap_err();
    assert!(chain(&e).contains("not valid for name"), "{}", chain(&e));
}

pub(crate) fn an_unusable_ca_file_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for path in [dir.path().join("missing.pem"), empty, garbled] {
        let e = Postgres::new(&PgConfig {
            url: "postgres://phaze@localhost/portal?sslmode=require".into(),
            schema: None,
            ca_file: Some(path.clone()),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
            wait_timeout: Duration::from_secs(1),
            query_timeout: std::time::Duration::from_secs(5),
        })
        .unwrap_err();
        assert!(
            matches!(&e, PgError::CaFile { path: p, .. } if *p == path),
            "{e}"
        );
    }
}
