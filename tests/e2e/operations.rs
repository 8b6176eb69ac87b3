//! Operations in process: events no HTTP input can cause still reach the portal's metrics.

use awc::http::StatusCode;
use phaze_e2e::spawn_portal_with;
use phaze_sanitize::{CommandPolicy, CommandRunner};
use std::path::Path;
use std::time::Duration;

/// No request reaches a command with anything it chose (the device provisioner's arguments are
/// generated keys and addresses, and its program is the configured one), so a refused command
/// cannot be caused over HTTP. It is caused here, through the runner the portal's event sinks
/// are given, and `/metrics` counts it once.
#[actix_web::test]
async fn a_refused_command_is_counted_in_the_portals_metrics() {
    let p = spawn_portal_with(|s| s.metrics.allow_networks = vec!["127.0.0.1/32".parse().unwrap()])
        .await;
    let runner = CommandRunner::new(CommandPolicy {
        allowed: vec!["/usr/bin/wg".into()],
        env: Vec::new(),
        timeout: Duration::from_secs(1),
        max_output: 1024,
    })
    .unwrap()
    .with_events(p.state.events.clone());
    assert!(runner.run(Path::new("/bin/sh"), &[]).is_err());
    let r = p.browser().get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .contains("phaze_security_events_total{kind=\"command_refused\"} 1\n"),
        "{}",
        r.body
    );
}
