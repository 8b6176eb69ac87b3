//! `PrivacyService::export` over the memory adapters: every store's part, and no secret.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use phaze_audit::{AuditLog, Draft};
use phaze_auth::{
    Account, Argon2id, AuthConfig, AuthKeys, AuthService, DisplayName, Email, EmailIndexKey,
    HashParams, Mailer, PasswordPolicy, TokenHasher, TwoFactor, UserId,
};
use phaze_devices::{Device, DeviceId, DeviceKeys, DeviceName, DeviceStore, TunnelAddress};
use phaze_payments::{Status, SubscriptionRecord, Subscriptions};
use phaze_privacy::{PrivacyError, PrivacyService, FORMAT};
use phaze_sessions::{ClientMeta, Sealer, SealingKey, SessionManager, SessionPolicy};
use phaze_store_memory::{
    MemoryAccounts, MemoryAudit, MemoryDevices, MemoryMailer, MemorySessions, MemoryStepLedger,
    MemorySubscriptions, MemoryTokens,
};
use secrecy::SecretBox;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

#[tokio::test]
async fn the_export_gathers_every_store_and_leaves_secrets_out() {
    let accounts = Arc::new(MemoryAccounts::default());
    let mailer = Arc::new(MemoryMailer::default());
    let sealer = Sealer::new(vec![SealingKey::new(&[4; 32])]).unwrap();
    let auth = Arc::new(AuthService::new(
        accounts.clone(),
        Arc::new(MemoryTokens::default()),
        Arc::new(MemoryStepLedger::default()),
        mailer.clone(),
        Arc::new(
            Argon2id::new(HashParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            })
            .unwrap(),
        ),
        AuthKeys {
            tokens: TokenHasher::new(SecretBox::new(Box::new([3; 32]))),
            sealer: sealer.clone(),
            email_index: EmailIndexKey::new(SecretBox::new(Box::new([6; 32]))),
        },
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            public_url: "https://portal.example".into(),
            letters: phaze_auth::Letters::default(),
        },
    ));
    let sessions = Arc::new(SessionManager::new(
        Arc::new(MemorySessions::default()),
        sealer,
        SessionPolicy::default(),
    ));
    let devices = Arc::new(MemoryDevices::default());
    let subscriptions = Arc::new(MemorySubscriptions::default());
    let audit = AuditLog::new(Arc::new(MemoryAudit::default()), [8; 32]);
    let privacy = PrivacyService::new(
        auth.clone(),
        sessions.clone(),
        devices.clone(),
        subscriptions.clone(),
        audit.clone(),
    );

    let ada = Account {
        id: UserId::generate(),
        email: Email::parse("ada@example.com").unwrap(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        display_name: DisplayName::parse("Ada <b>").unwrap(),
        is_admin: false,
        locked: false,
        created_at: t0(),
        password_changed_at: t0(),
        two_factor: Some(TwoFactor {
            sealed_secret: b"SEALED-SECRET-BYTES".to_vec(),
            enabled_at: Some(t0()),
            recovery_codes: Vec::new(),
        }),
    };
    auth.accounts().insert(&ada).await.unwrap();
    // Mail still held for her (its body carries a link), and mail to someone else.
    for to in ["ada@example.com", "bob@example.com"] {
        mailer
            .send(&phaze_auth::OutgoingMail {
                to: Email::parse(to).unwrap(),
                subject: "Your link".into(),
                body: "https://portal.example/reset/LINK-TOKEN".into(),
            })
            .await
            .unwrap();
    }
    let meta = ClientMeta {
        ip: Some("203.0.113.9".parse().unwrap()),
        user_agent: "Firefox".into(),
    };
    let (session_id, _) = sessions.start(&ada.id, None, &meta, t0()).await.unwrap();
    let device = Device {
        id: DeviceId::generate(),
        user_id: ada.id,
        name: DeviceName::parse("laptop").unwrap(),
        public_key: DeviceKeys::generate().public(),
        sealed_private_key: b"SEALED-PRIVATE-KEY".to_vec(),
        slot: 0,
        address: TunnelAddress {
            v4: "10.8.0.2".parse().unwrap(),
            v6: "fd00::2".parse().unwrap(),
        },
        created_at: t0(),
    };
    devices.insert(&device, 5).await.unwrap();
    let mut sub = SubscriptionRecord::new(ada.id);
    sub.customer = Some("cus_ada".into());
    sub.status = Status::Active;
    assert!(subscriptions.put(&sub, 0).await.unwrap());
    audit
        .record(Draft::new(t0(), None, "admin.grant").subject(ada.id))
        .await
        .unwrap();
    audit
        .record(Draft::new(t0(), None, "admin.grant").subject(UserId::generate()))
        .await
        .unwrap();

    let export = privacy
        .export(&ada.id, t0() + Duration::minutes(1))
        .await
        .unwrap();
    let json = serde_json::to_string(&export).unwrap();
    assert_eq!(export.format, FORMAT);
    assert_eq!(export.account.email, "ada@example.com");
    assert_eq!(export.account.display_name, "Ada <b>");
    assert!(export.account.two_factor);
    assert_eq!(export.sessions.len(), 1);
    assert_eq!(export.sessions[0].ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(export.devices.len(), 1);
    assert_eq!(export.devices[0].public_key, device.public_key.to_base64());
    assert_eq!(
        export.subscription.as_ref().unwrap().customer.as_deref(),
        Some("cus_ada")
    );
    assert_eq!(export.subscription.as_ref().unwrap().status, "active");
    assert_eq!(export.audit.len(), 1, "only the entries about her");
    assert_eq!(export.mail.len(), 1, "only the mail to her");
    assert_eq!(
        (export.mail[0].subject.as_str(), export.mail[0].state),
        ("Your link", "waiting")
    );
    for secret in ["$argon2", "SEALED", session_id.expose(), "LINK-TOKEN"] {
        assert!(!json.contains(secret), "{secret} in the export");
    }
    assert!(matches!(
        privacy.export(&UserId::generate(), t0()).await,
        Err(PrivacyError::NoAccount)
    ));
}
