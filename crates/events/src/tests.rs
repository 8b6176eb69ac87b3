use super::*;
use std::io;
use std::net::Ipv4Addr;

fn one_of_each() -> Vec<SecurityEvent> {
    let user = UserId::generate();
    let client = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    vec![
        SecurityEvent::LoginFailed {
            client,
            identifier: "h1".into(),
        },
        SecurityEvent::LoginSucceeded { user, client },
        SecurityEvent::LockoutStarted {
            identifier: "h1".into(),
            scope: LockScope::Identifier,
        },
        SecurityEvent::LockedOutAttempt {
            client,
            identifier: "h1".into(),
        },
        SecurityEvent::ChallengeIssued {
            client,
            identifier: "h1".into(),
        },
        SecurityEvent::RateLimited {
            budget: "post",
            subject: "s".into(),
            retry_after_secs: 5,
        },
        SecurityEvent::CsrfFailure {
            client,
            path: "/x".into(),
            reason: CsrfReason::Origin,
        },
        SecurityEvent::WebhookSignatureFailure {
            client,
            reason: "no v1".into(),
        },
        SecurityEvent::WebhookClaimLost {
            event_id: "evt_1".into(),
        },
        SecurityEvent::LockTimeout {
            file: "f.lock".into(),
            waited_ms: 5000,
        },
        SecurityEvent::CommandRefused {
            program: "/bin/sh".into(),
        },
        SecurityEvent::PasswordChanged { user },
        SecurityEvent::PasswordReset { user },
        SecurityEvent::EmailVerified { user },
        SecurityEvent::TwoFactorEnabled { user },
        SecurityEvent::TwoFactorDisabled { user },
        SecurityEvent::RecoveryCodeUsed { user, left: 9 },
        SecurityEvent::RecoveryCodesRenewed { user },
        SecurityEvent::SessionRevoked { user },
        SecurityEvent::SessionsRevoked { user, count: 2 },
        SecurityEvent::SessionsRestarted {
            user,
            reason: "password_changed",
            count: 1,
        },
        SecurityEvent::Logout { user },
        SecurityEvent::RoleChanged { user, admin: true },
        SecurityEvent::DeviceAdded {
            user,
            device: "d".into(),
        },
        SecurityEvent::DeviceDeleted {
            user,
            device: "d".into(),
        },
        SecurityEvent::CheckoutStarted { user },
        SecurityEvent::MailDeadLetter {
            id: "m".into(),
            attempts: 10,
        },
        SecurityEvent::AdminAction {
            admin: user,
            action: "lock",
            target: Some(user),
        },
    ]
}

#[test]
fn every_kind_is_listed_once_in_order() {
    let kinds: Vec<_> = one_of_each().iter().map(SecurityEvent::kind).collect();
    assert_eq!(kinds, SecurityEvent::KINDS);
    let mut unique = kinds.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), kinds.len());
}

#[test]
fn events_reach_every_sink_once() {
    let a = Arc::new(Recorder::default());
    let b = Arc::new(Recorder::default());
    let events = Events::new([a.clone() as Arc<dyn EventSink>, b.clone()]);
    events.emit(SecurityEvent::CommandRefused {
        program: "/bin/sh".into(),
    });
    assert_eq!(a.kinds(), ["command_refused"]);
    assert_eq!(b.events(), a.events());
}

/// A writer the JSON subscriber of one test writes into.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_log_line_is_json_with_the_kind_and_fields_and_the_right_level() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for event in one_of_each() {
            TracingSink.record(&event);
        }
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), SecurityEvent::KINDS.len());
    let failed = lines[0];
    assert!(failed.contains(r#""target":"security""#), "{failed}");
    assert!(failed.contains(r#""level":"INFO""#), "{failed}");
    assert!(
        failed.contains(r#""event":"login_failure","client":"203.0.113.9","subject":"h1""#),
        "{failed}"
    );
    let csrf = lines[6];
    assert!(
        csrf.contains(r#""level":"WARN""#) && csrf.contains(r#""reason":"origin""#),
        "{csrf}"
    );
    assert!(lines[26].contains(r#""level":"ERROR""#), "{}", lines[26]);
    assert!(lines[27].contains("target_user"), "{}", lines[27]);
}
