use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn every_kind_is_exported_at_zero_and_counts_once_per_event() {
    let m = Metrics::new();
    let text = m.encode();
    for kind in SecurityEvent::KINDS {
        let series = format!("phaze_security_events_total{{kind=\"{kind}\"}} 0");
        assert!(text.contains(&series), "{series} missing");
    }
    m.record(&SecurityEvent::CommandRefused {
        program: "/bin/sh".into(),
    });
    let text = m.encode();
    assert_eq!(
        line(
            &text,
            "phaze_security_events_total{kind=\"command_refused\"}"
        ),
        Some("phaze_security_events_total{kind=\"command_refused\"} 1")
    );
}

#[test]
fn failed_logins_count_by_client_with_ipv6_by_64() {
    let m = Metrics::new();
    let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    let a = IpAddr::V6("2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap());
    let b = IpAddr::V6("2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap());
    for client in [v4, v4, a, b] {
        m.record(&SecurityEvent::LoginFailed {
            client,
            identifier: "h".into(),
        });
    }
    let text = m.encode();
    assert!(
        text.contains("phaze_login_failures_by_client_total{client=\"203.0.113.9\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("phaze_login_failures_by_client_total{client=\"2001:db8:1:2::/64\"} 2"),
        "{text}"
    );
    assert!(text.contains("phaze_security_events_total{kind=\"login_failure\"} 4"));
}

#[test]
fn clients_past_the_cap_count_as_other() {
    let m = Metrics::new();
    for i in 0..(MAX_CLIENTS as u32 + 5) {
        m.record(&SecurityEvent::LoginFailed {
            client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            identifier: "h".into(),
        });
    }
    let text = m.encode();
    let series = text
        .lines()
        .filter(|l| l.starts_with("phaze_login_failures_by_client_total{"))
        .count();
    assert_eq!(series, MAX_CLIENTS + 1);
    assert!(text.contains("phaze_login_failures_by_client_total{client=\"other\"} 5"));
}

#[test]
fn requests_are_labelled_by_pattern_known_methods_and_status_class_only() {
    let m = Metrics::new();
    let config = "/account/devices/{id}/config";
    m.observe_request("GET", config.into(), 200, Duration::from_millis(3));
    m.observe_request("GET", config.into(), 204, Duration::from_millis(3));
    m.observe_request("BREW", "unmatched".into(), 404, Duration::from_millis(1));
    m.observe_request("POST", "/login".into(), 503, Duration::from_millis(1));
    let text = m.encode();
    let count = |labels: &str| {
        series(
            &text,
            &format!("phaze_http_request_duration_seconds_count{{{labels}}}"),
        )
    };
    assert_eq!(
        count(&format!("method=\"GET\",route=\"{config}\",status=\"2xx\"")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count("method=\"other\",route=\"unmatched\",status=\"4xx\""),
        Some(1.0)
    );
    assert_eq!(
        count("method=\"POST\",route=\"/login\",status=\"5xx\""),
        Some(1.0)
    );
}

fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn gauges_and_store_series_are_exported() {
    let m = Metrics::new();
    m.set_mail_queue(7);
    m.argon2().waiting.set(3);
    let series = m.store_series("fs", "sessions.get");
    series.observe(Duration::from_micros(120), false);
    series.observe(Duration::from_micros(90), true);
    let text = m.encode();
    assert!(text.contains("phaze_mail_queue_depth 7"));
    assert!(text.contains("phaze_argon2_waiting 3"));
    assert!(text.contains(
        "phaze_store_operation_duration_seconds_count{adapter=\"fs\",operation=\"sessions.get\"} 2"
    ));
    assert!(text.contains("phaze_store_errors_total{adapter=\"fs\",operation=\"sessions.get\"} 1"));
}

fn bearer(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap()
}

#[test]
fn access_is_by_network_or_exact_bearer_token_and_closed_by_default() {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let outside = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    assert!(!MetricsAccess::default().allows(local, None));
    assert!(!MetricsAccess::default().allows(local, Some(&bearer("Bearer "))));

    let token = "t0ken-t0ken-t0ken-t0ken-t0ken-t0ken";
    let access = MetricsAccess::new(
        vec!["10.0.0.0/8".parse().unwrap()],
        Some(SecretString::from(token)),
    );
    assert!(access.allows(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), None));
    // An IPv4-mapped IPv6 peer is the IPv4 address it maps.
    assert!(access.allows("::ffff:10.1.2.3".parse().unwrap(), None));
    assert!(!access.allows(outside, None));
    assert!(access.allows(outside, Some(&bearer(&format!("Bearer {token}")))));
    for wrong in [
        format!("Bearer {token}x"),
        format!("Bearer {}", &token[1..]),
        format!("Basic {token}"),
        token.to_owned(),
        "Bearer ".to_owned(),
    ] {
        assert!(!access.allows(outside, Some(&bearer(&wrong))), "{wrong}");
    }
}

#[tokio::test]
async fn a_timed_store_answers_as_its_inner_one_and_counts_each_call() {
    use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
    let m = Arc::new(Metrics::new());
    let inner: Arc<dyn RateLimitStore> = Arc::new(phaze_store_memory::MemoryRateLimits::default());
    let timed = Timed::new(inner, "memory", m.clone());
    let key = LimitKey::from([7; 32]);
    let window = Window::new(1, time::Duration::minutes(1));
    let now = time::OffsetDateTime::UNIX_EPOCH;
    assert!(timed.hit(&key, window, now).await.unwrap().allowed);
    assert!(
        !timed.hit(&key, window, now).await.unwrap().allowed,
        "the inner store's answer"
    );
    let text = m.encode();
    assert!(text.contains(
        "phaze_store_operation_duration_seconds_count{adapter=\"memory\",operation=\"ratelimit.hit\"} 2"
    ), "{text}");
    assert!(
        text.contains("phaze_store_errors_total{adapter=\"memory\",operation=\"ratelimit.hit\"} 0"),
        "every operation exported, no errors: {text}"
    );
}
