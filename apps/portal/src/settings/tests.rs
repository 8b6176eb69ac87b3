use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_the_embedded_default() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.http.port, 8080);
    assert_eq!(s.http.host.to_string(), "127.0.0.1");
    assert_eq!(s.store.kind, StoreKind::Fs);
    assert_eq!(s.store.data_dir, PathBuf::from("./var"));
    assert_eq!(s.outbox_dir(), PathBuf::from("./var/outbox"));
    assert_eq!(s.session.idle_secs, 1800);
    assert_eq!(s.auth.argon2_m_kib, 19_456);
}

#[test]
fn file_then_environment_override() {
    let dir = std::env::temp_dir().join(format!("phaze-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("phaze.toml");
    std::fs::write(&file, "[http]\nport = 9000\npublic_url = \"https://portal.example\"\n[session]\nidle_secs = 600\n").unwrap();
    let s = Settings::load_from(
        Some(&file),
        env(&[
            ("PHAZE__HTTP__PORT", "9100"),
            ("PHAZE__HTTP__TRUSTED_PROXIES", "10.0.0.0/8,2001:db8::/32"),
            ("PHAZE__STORE__KIND", "memory"),
            ("OTHER", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http.port, 9100, "env wins over the file");
    assert_eq!(s.session.idle_secs, 600, "file wins over defaults");
    assert_eq!(s.http.trusted_proxies.len(), 2);
    assert_eq!(s.store.kind, StoreKind::Memory);
    assert_eq!(s.public_url(9100), "https://portal.example");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_proxy_header_family_is_one_key_defaulting_to_x_forwarded_for() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.http.forwarded_headers, ForwardedHeaders::XForwardedFor);
    for (value, family) in [
        ("forwarded", ForwardedHeaders::Forwarded),
        ("x-forwarded-for", ForwardedHeaders::XForwardedFor),
    ] {
        let s =
            Settings::load_from(None, env(&[("PHAZE__HTTP__FORWARDED_HEADERS", value)])).unwrap();
        assert_eq!(s.http.forwarded_headers, family, "{value}");
    }
    let dir = std::env::temp_dir().join(format!("phaze-settings-proxies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("phaze.toml");
    std::fs::write(
        &file,
        "[http]\ntrusted_proxies = [\"10.0.0.0/24\"]\nforwarded_headers = \"forwarded\"\n",
    )
    .unwrap();
    let s = Settings::load_from(Some(&file), env(&[])).unwrap();
    assert_eq!(s.http.forwarded_headers, ForwardedHeaders::Forwarded);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PHAZE__HTTP__PORT", "eighty")], "http.port"),
        (&[("PHAZE__HTTP__PORT", "70000")], "http.port"),
        (
            &[("PHAZE__HTTP__TRUSTED_PROXIES", "10.0.0.0/99")],
            "http.trusted_proxies",
        ),
        (
            &[("PHAZE__HTTP__FORWARDED_HEADERS", "both")],
            "http.forwarded_headers",
        ),
        (&[("PHAZE__STORE__KIND", "mongodb")], "store.kind"),
        (
            &[("PHAZE__SESSION__IP_V6_PREFIX", "129")],
            "session.ip_v6_prefix",
        ),
        (&[("PHAZE__AUTH__PASSWORD_MIN", "4")], "auth.password_min"),
        (
            &[("PHAZE__HTTP__PUBLIC_URL", "javascript:alert(1)")],
            "http.public_url",
        ),
        (&[("PHAZE__MAIL__FROM", "not an address")], "mail.from"),
        (&[("PHAZE__HTTP__NO_SUCH_KEY", "1")], "no_such_key"),
        (&[("PHAZE__STORE__KIND", "postgres")], "store.postgres.url"),
        (
            &[
                ("PHAZE__STORE__KIND", "postgres"),
                ("PHAZE__STORE__POSTGRES__URL", "mysql://db/x"),
            ],
            "store.postgres.url",
        ),
        (
            // Keys generated per process would differ between the processes of a cluster.
            &[
                ("PHAZE__STORE__KIND", "postgres"),
                ("PHAZE__STORE__POSTGRES__URL", "postgres://db/x"),
            ],
            "secrets",
        ),
        (
            &[("PHAZE__STORE__REDIS__URL", "http://cache:6379")],
            "store.redis.url",
        ),
        (
            &[("PHAZE__STORE__REDIS__RESPONSE_TIMEOUT_MS", "0")],
            "store.redis",
        ),
        // Gone: each worker keeps one pipelined connection. Named, it fails rather than being
        // silently ignored.
        (&[("PHAZE__STORE__REDIS__POOL_SIZE", "16")], "pool_size"),
        (
            &[("PHAZE__STORE__POSTGRES__WAIT_TIMEOUT_MS", "0")],
            "store.postgres",
        ),
    ];
    for (vars, key) in cases {
        let err = Settings::load_from(None, env(vars))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{vars:?}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn the_cluster_shape_loads_and_its_urls_never_print() {
    let key = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=";
    let s = Settings::load_from(
        None,
        env(&[
            ("PHAZE__STORE__KIND", "postgres"),
            (
                "PHAZE__STORE__POSTGRES__URL",
                "postgres://phaze:hunter2@db/phaze",
            ),
            ("PHAZE__STORE__REDIS__URL", "rediss://:hunter3@cache:6380"),
            ("PHAZE__SECRETS__SESSION_KEYS", key),
            ("PHAZE__SECRETS__CSRF_KEY", key),
            ("PHAZE__SECRETS__TOKEN_PEPPER", key),
        ]),
    )
    .unwrap();
    assert_eq!(s.store.kind, StoreKind::Postgres);
    assert_eq!(s.store.redis.prefix, "phaze:");
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2") && !printed.contains("hunter3"));
}

#[test]
fn secrets_never_print() {
    let s = Settings::load_from(
        None,
        env(&[(
            "PHAZE__SECRETS__CSRF_KEY",
            "c2VjcmV0LWNzcmYta2V5LXZhbHVlLTMyLWJ5dGVzISE=",
        )]),
    )
    .unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains("c2VjcmV0"), "{printed}");
}

#[test]
fn payments_come_from_the_file_and_secrets_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("phaze-settings-pay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("phaze.toml");
    std::fs::write(
        &file,
        "[payments]\nwebhook_tolerance_secs = 120\n\
         [[payments.plans]]\nid = \"basic\"\nname = \"Basic\"\nprice = \"price_1\"\n\
         [[payments.plans]]\nid = \"family\"\nname = \"Family\"\nprice = \"price_2\"\n",
    )
    .unwrap();
    let s = Settings::load_from(
        Some(&file),
        env(&[
            (
                "PHAZE__PAYMENTS__WEBHOOK_SECRETS",
                "whsec_0123456789abcdef_old,whsec_0123456789abcdef_new",
            ),
            ("PHAZE__PAYMENTS__STRIPE_SECRET_KEY", "sk_test_x"),
        ]),
    )
    .unwrap();
    let p = &s.payments;
    assert_eq!(p.webhook_tolerance_secs, 120);
    assert_eq!(p.plans.len(), 2);
    assert_eq!(p.plans[1].price, "price_2");
    assert_eq!(
        p.webhook_secrets.len(),
        2,
        "a list, so a secret can be rolled"
    );
    assert_eq!(p.stripe_secret_key.expose_secret(), "sk_test_x");
    assert!(
        !format!("{p:?}").contains("sk_test_x"),
        "secrets never print"
    );
    assert_eq!(p.retention_days, 30);

    for (bad, key) in [
        (
            "[[payments.plans]]\nid = \"a b\"\nname = \"A\"\nprice = \"price_1\"\n",
            "payments.plans",
        ),
        (
            "[[payments.plans]]\nid = \"a\"\nname = \"A\"\nprice = \"prod_1\"\n",
            "payments.plans",
        ),
        (
            "[payments]\nwebhook_tolerance_secs = 0\n",
            "payments.webhook_tolerance_secs",
        ),
        (
            "[payments]\nretention_days = 2\n",
            "payments.retention_days",
        ),
        ("[payments]\nunknown = 1\n", "unknown"),
        (
            "[payments]\nwebhook_secrets = [\"\"]\n",
            "payments.webhook_secrets",
        ),
        (
            "[payments]\nwebhook_secrets = [\"whsec_short\"]\n",
            "payments.webhook_secrets",
        ),
        (
            "[payments]\nwebhook_secrets = [\" whsec_0123456789abcdef\"]\n",
            "payments.webhook_secrets",
        ),
    ] {
        std::fs::write(&file, bad).unwrap();
        let e = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(e.to_string().contains(key), "{bad}: {e}");
    }
    // An empty entry from the environment (an unset template variable, a trailing comma) stops
    // the process: an empty HMAC key would verify anyone's signature.
    for value in ["", "whsec_0123456789abcdef_old,"] {
        let e = Settings::load_from(None, env(&[("PHAZE__PAYMENTS__WEBHOOK_SECRETS", value)]));
        assert!(
            e.as_ref()
                .is_err_and(|e| e.to_string().contains("webhook_secrets")),
            "{value:?}: {:?}",
            e.map(|s| s.payments.webhook_secrets.len())
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A file only its owner can read, holding `content`.
fn secret_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let _ = mode;
    path
}

#[test]
fn every_secret_can_come_from_a_file() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "t".repeat(40);
    let pairs = [
        (
            "PHAZE__METRICS__BEARER_TOKEN_FILE",
            secret_file(d, "metrics", &format!("{token}\n"), 0o400),
        ),
        (
            "PHAZE__STORE__POSTGRES__URL_FILE",
            secret_file(d, "pg", "postgres://u:p@db/x\r\n", 0o440),
        ),
        (
            "PHAZE__STORE__REDIS__URL_FILE",
            secret_file(d, "redis", "redis://:pw@cache", 0o600),
        ),
        (
            "PHAZE__SECRETS__SESSION_KEYS_FILE",
            secret_file(
                d,
                "keys",
                &format!("{}\n\n{}\n", "A".repeat(44), "B".repeat(44)),
                0o400,
            ),
        ),
        (
            "PHAZE__SECRETS__CSRF_KEY_FILE",
            secret_file(d, "csrf", &"C".repeat(44), 0o400),
        ),
        (
            "PHAZE__SECRETS__TOKEN_PEPPER_FILE",
            secret_file(d, "pepper", &"D".repeat(44), 0o400),
        ),
        (
            "PHAZE__MAIL__SMTP__PASSWORD_FILE",
            secret_file(d, "smtp", "s3cret pass\n", 0o400),
        ),
        (
            "PHAZE__PAYMENTS__STRIPE_SECRET_KEY_FILE",
            secret_file(d, "stripe", "sk_test_123", 0o400),
        ),
        (
            "PHAZE__PAYMENTS__WEBHOOK_SECRETS_FILE",
            secret_file(
                d,
                "whsec",
                "whsec_aaaaaaaaaaaaaaaaaaaa\nwhsec_bbbbbbbbbbbbbbbbbbbb\n",
                0o400,
            ),
        ),
    ];
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, p)| (k.to_string(), p.display().to_string()))
        .collect();
    let s = Settings::load_from(None, vars).unwrap();
    assert_eq!(
        s.metrics.bearer_token.expose_secret(),
        token,
        "the final newline dropped"
    );
    assert_eq!(s.store.postgres.url.expose_secret(), "postgres://u:p@db/x");
    assert_eq!(s.store.redis.url.expose_secret(), "redis://:pw@cache");
    let keys: Vec<&str> = s
        .secrets
        .session_keys
        .iter()
        .map(|k| k.expose_secret())
        .collect();
    assert_eq!(keys, ["A".repeat(44), "B".repeat(44)]);
    assert_eq!(
        s.secrets.csrf_key.as_ref().unwrap().expose_secret(),
        "C".repeat(44)
    );
    assert_eq!(
        s.secrets.token_pepper.as_ref().unwrap().expose_secret(),
        "D".repeat(44)
    );
    assert_eq!(
        s.mail.smtp.password.expose_secret(),
        "s3cret pass",
        "spaces inside kept"
    );
    assert_eq!(s.payments.stripe_secret_key.expose_secret(), "sk_test_123");
    assert_eq!(s.payments.webhook_secrets.len(), 2);
    // From the TOML file too.
    let toml = d.join("phaze.toml");
    let pepper = d.join("pepper");
    std::fs::write(
        &toml,
        format!("[secrets]\ntoken_pepper_file = \"{}\"\n", pepper.display()),
    )
    .unwrap();
    let s = Settings::load_from(Some(&toml), env(&[])).unwrap();
    assert_eq!(
        s.secrets.token_pepper.unwrap().expose_secret(),
        "D".repeat(44)
    );
}

#[test]
fn secret_files_that_others_can_read_or_write_or_that_are_missing_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content = "hunter2-hunter2-hunter2-hunter2-hunter2";
    let cases: Vec<(PathBuf, &str)> = vec![
        #[cfg(unix)]
        (
            secret_file(d, "world", content, 0o644),
            "readable by everyone",
        ),
        #[cfg(unix)]
        (
            secret_file(d, "group-w", content, 0o460),
            "writable by others",
        ),
        (d.join("missing"), "not found"),
        (d.to_path_buf(), "not a regular file"),
        (
            secret_file(d, "two-lines", &format!("{content}\nsecond\n"), 0o400),
            "one line",
        ),
        (secret_file(d, "empty", "\n", 0o400), "one line"),
    ];
    for (path, why) in cases {
        let e = Settings::load_from(
            None,
            env(&[(
                "PHAZE__SECRETS__TOKEN_PEPPER_FILE",
                &path.display().to_string(),
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("secrets.token_pepper_file") && e.contains(why),
            "{why}: {e}"
        );
        assert!(!e.contains("hunter2"), "the content never shows: {e}");
    }
    // Both ways at once is a mistake, not a precedence rule.
    let ok = secret_file(d, "ok", &"E".repeat(44), 0o400);
    let e = Settings::load_from(
        None,
        env(&[
            (
                "PHAZE__SECRETS__TOKEN_PEPPER_FILE",
                &ok.display().to_string(),
            ),
            ("PHAZE__SECRETS__TOKEN_PEPPER", &"F".repeat(44)),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("set twice"), "{e}");
    // An unknown `_file` key is still an unknown key.
    let e = Settings::load_from(None, env(&[("PHAZE__HTTP__PORT_FILE", "/x")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("port_file"), "{e}");
}

#[test]
fn tls_needs_both_files_a_reload_period_and_https_for_the_redirect() {
    let https = Settings::load_from(
        None,
        env(&[
            ("PHAZE__HTTP__TLS__CERT_FILE", "/etc/phaze/cert.pem"),
            ("PHAZE__HTTP__TLS__KEY_FILE", "/etc/phaze/key.pem"),
        ]),
    )
    .unwrap();
    assert!(https.http.tls.enabled());
    assert!(
        https.public_url(8443).starts_with("https://"),
        "derived origin is https"
    );
    assert!(Settings::load_from(None, env(&[]))
        .unwrap()
        .public_url(8080)
        .starts_with("http://"));
    for (pairs, key) in [
        (
            vec![("PHAZE__HTTP__TLS__CERT_FILE", "/c")],
            "http.tls.key_file",
        ),
        (
            vec![("PHAZE__HTTP__TLS__KEY_FILE", "/k")],
            "http.tls.key_file",
        ),
        (
            vec![
                ("PHAZE__HTTP__TLS__CERT_FILE", "/c"),
                ("PHAZE__HTTP__TLS__KEY_FILE", "/k"),
                ("PHAZE__HTTP__TLS__RELOAD_SECS", "0"),
            ],
            "http.tls.reload_secs",
        ),
        (
            vec![("PHAZE__HTTP__TLS__REDIRECT_PORT", "8080")],
            "http.tls.redirect_port",
        ),
    ] {
        let e = Settings::load_from(None, env(&pairs))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}
