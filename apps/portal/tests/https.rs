//! HTTPS served directly by the release binary: a certificate made by `openssl` here, TLS 1.3 and
//! 1.2 accepted, 1.1 refused, HSTS on every answer, the certificate swapped while serving, and
//! the plain listener that only redirects.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use phaze_testkit::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Portal {
    child: Child,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_present() -> bool {
    let have = |t: &str| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let present = have("curl") && Command::new("openssl").arg("version").output().is_ok();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl and curl are needed under CI"
        );
        eprintln!("skipped: openssl or curl is not installed");
    }
    present
}

/// A self-signed certificate for 127.0.0.1 and localhost, named `CN=<name>`, into `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn fingerprint(cert_pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), cert_pem).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// `openssl s_client` with `args` against the port: its output.
fn handshake(port: u16, args: &[&str]) -> Output {
    Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn served_fingerprint(port: u16) -> String {
    let out = handshake(port, &["-showcerts"]);
    fingerprint(&out.stdout)
}

/// The status code of a `curl -D -` header dump (HTTP/1.1 or HTTP/2).
fn status(head: &str) -> Option<u16> {
    head.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[test]
fn tls_1_3_and_1_2_work_1_1_is_refused_hsts_is_sent_and_a_new_certificate_is_served_without_a_restart(
) {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "first");
    let (port, redirect) = (free_port(), free_port());
    let _portal = Portal {
        child: Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .env("PHAZE__HTTP__PORT", port.to_string())
            .env("PHAZE__STORE__DATA_DIR", dir.path().join("data"))
            .env("PHAZE__HTTP__TLS__CERT_FILE", &cert)
            .env("PHAZE__HTTP__TLS__KEY_FILE", &key)
            .env("PHAZE__HTTP__TLS__RELOAD_SECS", "1")
            .env("PHAZE__HTTP__TLS__REDIRECT_PORT", redirect.to_string())
            .env("PHAZE__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&curl(&["-k", &format!("{base}/healthz")])) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the portal did not come up over HTTPS"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let tls13 = handshake(port, &["-tls1_3"]);
    assert!(tls13.status.success() && String::from_utf8_lossy(&tls13.stdout).contains("TLSv1.3"));
    let tls12 = handshake(port, &["-tls1_2"]);
    let text = String::from_utf8_lossy(&tls12.stdout);
    assert!(tls12.status.success() && text.contains("TLSv1.2"), "{text}");
    assert!(text.contains("ECDHE"), "forward secrecy on 1.2: {text}");
    // The client willing (security level 0), the server still refuses.
    let tls11 = handshake(port, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    let text = String::from_utf8_lossy(&tls11.stdout);
    assert!(
        !tls11.status.success() || !text.contains("Cipher is"),
        "TLS 1.1 was accepted: {text}"
    );

    // HSTS and the __Host- cookie on an HTTPS answer.
    let head = curl(&["-k", &format!("{base}/login")]);
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    assert!(head.contains("set-cookie: __host-"), "{head}");
    // Plain HTTP to the TLS port is no answer at all.
    let plain = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(status(&plain), None, "{plain}");
    // The redirect listener sends every path to HTTPS, on the portal's own origin.
    let moved = curl(&[
        "-H",
        "Host: evil.example",
        &format!("http://127.0.0.1:{redirect}/login?next=%2Faccount"),
    ]);
    assert_eq!(status(&moved), Some(308), "{moved}");
    assert!(
        moved.contains(&format!("location: {base}/login?next=%2faccount")),
        "{moved}"
    );

    // A renewed certificate, written over the files: served within a few reloads.
    let first = served_fingerprint(port);
    assert_eq!(first, fingerprint(&std::fs::read(&cert).unwrap()));
    let (new_cert, new_key) = certificate(dir.path(), "second");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let second = fingerprint(&std::fs::read(&new_cert).unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_fingerprint(port) != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And a broken file keeps the one in use.
    std::fs::write(&cert, b"not a certificate").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(served_fingerprint(port), second);
    assert_eq!(
        status(&curl(&["-k", &format!("{base}/healthz")])),
        Some(200)
    );
}
