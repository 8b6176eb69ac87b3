use super::*;

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
    }
}

/// Builds a store and keeps only the error's whole source chain as text.
fn error_chain(config: &RedisConfig) -> Option<String> {
    let err = Redis::new(config).err()?;
    let mut text = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(" / {s} / {s:?}"));
        source = s.source();
    }
    Some(text)
}

fn check_prefix(prefix: &str, ok: bool) {
    let result = Redis::new(&config("redis://127.0.0.1:6379", prefix));
    assert_eq!(result.is_ok(), ok, "{prefix:?}: {:?}", result.err());
    if !ok {
        assert!(matches!(
            Redis::new(&config("redis://127.0.0.1:6379", prefix)),
            Err(RedisError::InvalidPrefix(_))
        ));
    }
}

#[test]
fn prefixes_are_checked() {
    check_prefix("phaze:", true);
    check_prefix("a", true);
    check_prefix("phaze-test:0123abcd:", true);
    check_prefix(&"p".repeat(64), true);
    check_prefix("", false);
    check_prefix(&"p".repeat(65), false);
    check_prefix("pha ze:", false);
    check_prefix("phaze:\n", false);
    check_prefix("phazé:", false);
    check_prefix("phaze\0", false);
    check_prefix("phaze*", false);
    check_prefix("pha?ze", false);
    check_prefix("[phaze]", false);
    check_prefix("phaze\\", false);
}

#[test]
fn building_needs_no_server() {
    // Nothing listens on port 1; building the pool must not try.
    assert!(Redis::new(&config("redis://127.0.0.1:1", "p:")).is_ok());
    assert!(Redis::new(&config("rediss://cache.example.com:6380/2", "p:")).is_ok());
}

#[test]
fn bad_urls_and_sizes_are_rejected() {
    for url in [
        "",
        "127.0.0.1:6379",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:6379/notanumber",
        "unix:///tmp/redis.sock",
    ] {
        assert!(
            matches!(
                Redis::new(&config(url, "p:")),
                Err(RedisError::InvalidUrl(_))
            ),
            "{url:?}"
        );
    }
    let mut c = config("redis://127.0.0.1:6379", "p:");
    c.pool_size = 0;
    assert!(matches!(Redis::new(&c), Err(RedisError::InvalidConfig(_))));
    for zero in 0..3 {
        let mut c = config("redis://127.0.0.1:6379", "p:");
        match zero {
            0 => c.connect_timeout = Duration::ZERO,
            1 => c.wait_timeout = Duration::ZERO,
            _ => c.response_timeout = Duration::ZERO,
        }
        assert!(matches!(Redis::new(&c), Err(RedisError::InvalidConfig(_))));
    }
}

#[test]
fn a_ca_needs_tls_and_pem() {
    let plain = config("redis://127.0.0.1:6379", "p:");
    assert!(matches!(
        Redis::with_tls_ca(&plain, b"-----BEGIN CERTIFICATE-----"),
        Err(RedisError::InvalidUrl(_))
    ));
    let tls = config("rediss://127.0.0.1:6380", "p:");
    for pem in [
        &b""[..],
        b"not pem at all",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        assert!(
            matches!(Redis::with_tls_ca(&tls, pem), Err(RedisError::InvalidCa(_))),
            "{:?}",
            String::from_utf8_lossy(pem)
        );
    }
}

#[test]
fn passwords_never_show() {
    const SECRET: &str = "hunter2-s3cr3t";
    for url in [
        format!("redis://:{SECRET}@127.0.0.1:6379"),
        format!("redis://alice:{SECRET}@127.0.0.1:6379/0"),
        format!("rediss://alice:{SECRET}@cache.example.com:6380/1?protocol=resp3"),
        format!("redis://alice:{SECRET}@127.0.0.1:6379/x"),
        format!("redis://alice:{SECRET}@:6379"),
        format!("redis://alice:{SECRET}@127.0.0.1:99999"),
        format!("redis://127.0.0.1:6379/0?pass={SECRET}"),
        format!("http://alice:{SECRET}@127.0.0.1:6379"),
    ] {
        let c = config(&url, "p:");
        let debug = format!("{c:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        if let Ok(redis) = Redis::new(&c) {
            let debug = format!("{redis:?}");
            assert!(!debug.contains(SECRET), "{debug}");
        }
        if let Some(chain) = error_chain(&c) {
            assert!(!chain.contains(SECRET), "{chain}");
        }
        let mut bad_prefix = c.clone();
        bad_prefix.prefix = String::new();
        if let Some(chain) = error_chain(&bad_prefix) {
            assert!(!chain.contains(SECRET), "{chain}");
        }
    }
}

#[test]
fn debug_keeps_what_helps() {
    let c = config("redis://alice:pw@10.0.0.5:6379/2", "phaze:");
    let debug = format!("{c:?}");
    assert!(
        debug.contains("redis://alice:<redacted>@10.0.0.5:6379/2"),
        "{debug}"
    );
    assert!(debug.contains("phaze:"), "{debug}");
    assert_eq!(
        redact_url("redis://10.0.0.5:6379/2"),
        "redis://10.0.0.5:6379/2"
    );
    assert_eq!(redact_url("nonsense"), "<unparsable URL>");
}
