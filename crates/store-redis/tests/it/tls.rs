//! `rediss://` against a private `redis-server --tls-port` whose certificate comes from a
//! throwaway CA made with `openssl`: verified connections work, unverifiable ones fail.

use phaze_ratelimit::{RateLimitStore, Window};
use phaze_sessions::SessionStore;
use phaze_store_redis::{Redis, RedisConfig};
use phaze_testkit::ratelimit::key;
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Server;
use phaze_testkit::free_port;

fn config(url: String) -> RedisConfig {
    RedisConfig {
        url,
        prefix: "phaze-tls:".to_owned(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
    }
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A CA (`ca.crt`) and a server certificate for `localhost` only (`server.crt`, `server.key`).
fn make_certificates(dir: &Path) -> Result<(), String> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=Phaze test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    )
}

pub(crate) async fn rediss_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    if let Err(e) = make_certificates(dir.path()) {
        phaze_testkit::server_unavailable("openssl (for test certificates)", &e);
    }
    let port = free_port();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let started = Server::start(
        port,
        &[
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1 -::1".into(),
            "--tls-cert-file".into(),
            path("server.crt"),
            "--tls-key-file".into(),
            path("server.key"),
            "--tls-ca-cert-file".into(),
            path("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
        dir.path(),
    );
    let _server = match started {
        Ok(s) => s,
        Err(e) => phaze_testkit::server_unavailable("redis-server with TLS support", &e),
    };
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();

    // Trusting the test CA, by the certificate's name: everything works over TLS.
    let redis = Redis::with_tls_ca(&config(format!("rediss://localhost:{port}")), &ca).unwrap();
    redis.ping().await.unwrap();
    let s = record(1, "alice");
    redis.sessions().insert(&s).await.unwrap();
    assert_eq!(redis.sessions().get(&s.key).await.unwrap(), Some(s.clone()));
    let window = Window::new(2, time::Duration::minutes(1));
    assert_eq!(
        redis
            .rate_limits()
            .hit(&key(1), window, t0())
            .await
            .unwrap()
            .remaining,
        1
    );

    // Failures, each quickly: the public roots do not know the test CA; the certificate does not
    // name 127.0.0.1; a plaintext client gets no answer it can use.
    for (what, redis, why) in [
        (
            "public roots only",
            Redis::new(&config(format!("rediss://localhost:{port}"))).unwrap(),
            "UnknownIssuer",
        ),
        (
            "wrong name",
            Redis::with_tls_ca(&config(format!("rediss://127.0.0.1:{port}")), &ca).unwrap(),
            "not valid for name",
        ),
        (
            "plaintext",
            Redis::new(&config(format!("redis://127.0.0.1:{port}"))).unwrap(),
            "",
        ),
    ] {
        let start = Instant::now();
        let result = redis.ping().await;
        let err = result.expect_err(what);
        let text = chain(&err);
        println!("{what}: {text}");
        assert!(text.contains(why), "{what}: {text}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            start.elapsed()
        );
        assert!(redis.sessions().get(&s.key).await.is_err(), "{what}");
    }
}
