//! The admin operations over the memory adapters: the gate, sudo mode, the audit entry of each,
//! and what each does to the account acted on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use async_trait::async_trait;
use phaze_admin::{Acting, AdminError, AdminService};
use phaze_audit::{AuditEntry, AuditError, AuditFilter, AuditLog, AuditStore, Verdict};
use phaze_auth::{
    Account, Argon2id, AuthConfig, AuthError, AuthKeys, AuthService, DisplayName, Email,
    EmailIndexKey, HashParams, PasswordPolicy, TokenHasher, TwoFactor, UserId,
};
use phaze_events::{Events, Recorder};
use phaze_sessions::{ClientMeta, Sealer, SealingKey, Session, SessionManager, SessionPolicy};
use phaze_store_memory::{
    MemoryAccounts, MemoryAudit, MemoryMailer, MemorySessions, MemoryStepLedger, MemoryTokens,
};
use secrecy::{SecretBox, SecretString};
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const PW: &str = "correct horse battery staple";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn client() -> Option<IpAddr> {
    Some("203.0.113.9".parse().unwrap())
}

struct Kit {
    admin: AdminService,
    auth: Arc<AuthService>,
    sessions: Arc<SessionManager>,
    audit: Arc<MemoryAudit>,
    mailer: Arc<MemoryMailer>,
    events: Arc<Recorder>,
}

fn kit_over(audit_store: Arc<dyn AuditStore>, audit: Arc<MemoryAudit>) -> Kit {
    let mailer = Arc::new(MemoryMailer::default());
    let sealer = Sealer::new(vec![SealingKey::new(&[4; 32])]).unwrap();
    let auth = Arc::new(AuthService::new(
        Arc::new(MemoryAccounts::default()),
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
    let events = Arc::new(Recorder::default());
    let admin = AdminService::new(
        auth.clone(),
        sessions.clone(),
        AuditLog::new(audit_store, [8; 32]),
        Events::new([events.clone() as Arc<dyn phaze_events::EventSink>]),
    );
    Kit {
        admin,
        auth,
        sessions,
        audit,
        mailer,
        events,
    }
}

fn kit() -> Kit {
    let audit = Arc::new(MemoryAudit::default());
    kit_over(audit.clone(), audit)
}

impl Kit {
    async fn account(&self, email: &str, admin: bool, two_factor: bool, verified: bool) -> Account {
        let hasher = Argon2id::new(HashParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        let email = Email::parse(email).unwrap();
        let account = Account {
            id: UserId::generate(),
            display_name: DisplayName::parse("someone").unwrap(),
            email,
            email_verified: verified,
            password_hash: hasher.hash_sync(PW).unwrap(),
            is_admin: admin,
            locked: false,
            created_at: t0(),
            password_changed_at: t0(),
            two_factor: two_factor.then(|| TwoFactor {
                sealed_secret: Vec::new(),
                enabled_at: Some(t0()),
                recovery_codes: Vec::new(),
            }),
        };
        self.auth.accounts().insert(&account).await.unwrap();
        account
    }

    async fn session(&self, user: &UserId, at: OffsetDateTime) -> Session {
        let meta = ClientMeta {
            ip: client(),
            user_agent: "test".into(),
        };
        self.sessions.start(user, None, &meta, at).await.unwrap().1
    }

    /// An admin with 2FA, logged in at `t0()`, acting at `now`.
    async fn acting(&self, now: OffsetDateTime) -> (Account, Acting) {
        let a = self.account("boss@example.com", true, true, true).await;
        let s = self.session(&a.id, t0()).await;
        let acting = self.admin.authorize(&a, &s, client(), now).unwrap();
        (a, acting)
    }

    fn entries(&self) -> Vec<AuditEntry> {
        let mut out = Vec::new();
        self.audit.tamper(|e| out = e.clone());
        out
    }

    async fn live_sessions(&self, user: &UserId) -> usize {
        self.sessions.list(user, t0()).await.unwrap().len()
    }
}

#[tokio::test]
async fn only_admins_with_two_factor_pass_the_gate() {
    let k = kit();
    let customer = k.account("c@example.com", false, true, true).await;
    let s = k.session(&customer.id, t0()).await;
    assert!(matches!(
        k.admin.authorize(&customer, &s, None, t0()),
        Err(AdminError::NotAdmin)
    ));
    let no_2fa = k.account("a@example.com", true, false, true).await;
    let s = k.session(&no_2fa.id, t0()).await;
    assert!(matches!(
        k.admin.authorize(&no_2fa, &s, None, t0()),
        Err(AdminError::TwoFactorRequired)
    ));
    let mut locked = k.account("l@example.com", true, true, true).await;
    locked.locked = true;
    let s = k.session(&locked.id, t0()).await;
    assert!(matches!(
        k.admin.authorize(&locked, &s, None, t0()),
        Err(AdminError::NotAdmin)
    ));
    assert!(k.entries().is_empty());
}

#[tokio::test]
async fn a_lock_suspends_ends_sessions_refuses_login_and_is_audited_once() {
    let k = kit();
    let (boss, acting) = k.acting(t0() + Duration::minutes(1)).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    k.session(&ada.id, t0()).await;
    k.session(&ada.id, t0()).await;
    let locked = k.admin.lock(&acting, &ada.id, t0()).await.unwrap();
    assert!(locked.locked);
    assert_eq!(k.live_sessions(&ada.id).await, 0);
    assert!(matches!(
        k.auth
            .login("ada@example.com", SecretString::from(PW), None, t0())
            .await,
        Err(AuthError::AccountLocked)
    ));
    // A wrong password is still the one answer: a lock tells an outsider nothing.
    assert!(matches!(
        k.auth
            .login(
                "ada@example.com",
                SecretString::from("wrong password!"),
                None,
                t0()
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    let entries = k.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (e.action.as_str(), e.actor, e.subject, e.client.as_deref()),
        (
            "admin.lock",
            Some(boss.id),
            Some(ada.id),
            Some("203.0.113.9")
        )
    );
    assert_eq!(k.events.kinds(), ["admin_action"]);

    k.admin.unlock(&acting, &ada.id, t0()).await.unwrap();
    k.auth
        .login("ada@example.com", SecretString::from(PW), None, t0())
        .await
        .unwrap();
    assert_eq!(k.entries().len(), 2);
    assert_eq!(
        k.admin.audit_log().verify().await.unwrap(),
        Verdict::Intact { entries: 2 }
    );
}

#[tokio::test]
async fn changes_to_access_need_a_recent_login_and_change_nothing_without_one() {
    let k = kit();
    let late = t0() + SessionPolicy::default().reauth + Duration::seconds(1);
    let (_, acting) = k.acting(late).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    k.session(&ada.id, late).await;
    assert!(matches!(
        k.admin.lock(&acting, &ada.id, late).await,
        Err(AdminError::ReauthRequired)
    ));
    assert!(matches!(
        k.admin.unlock(&acting, &ada.id, late).await,
        Err(AdminError::ReauthRequired)
    ));
    assert!(matches!(
        k.admin.end_sessions(&acting, &ada.id, late).await,
        Err(AdminError::ReauthRequired)
    ));
    for grant in [true, false] {
        assert!(matches!(
            k.admin.set_admin(&acting, &ada.id, grant, late).await,
            Err(AdminError::ReauthRequired)
        ));
    }
    let after = k.auth.account(&ada.id).await.unwrap().unwrap();
    assert!(!after.locked && !after.is_admin);
    assert_eq!(k.live_sessions(&ada.id).await, 1);
    assert!(k.entries().is_empty());
    // Reads do not need it, and are recorded.
    k.admin.view(&acting, &ada.id, late).await.unwrap();
    assert_eq!(k.entries()[0].action, "admin.view_user");
}

#[tokio::test]
async fn an_admin_cannot_lock_or_demote_themselves_here() {
    let k = kit();
    let (boss, acting) = k.acting(t0()).await;
    assert!(matches!(
        k.admin.lock(&acting, &boss.id, t0()).await,
        Err(AdminError::OwnAccount)
    ));
    assert!(matches!(
        k.admin.set_admin(&acting, &boss.id, false, t0()).await,
        Err(AdminError::OwnAccount)
    ));
    assert!(k.auth.account(&boss.id).await.unwrap().unwrap().is_admin);
    assert!(k.entries().is_empty());
}

#[tokio::test]
async fn grant_revoke_end_sessions_and_resend_do_what_they_say() {
    let k = kit();
    let (_, acting) = k.acting(t0()).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    k.session(&ada.id, t0()).await;
    assert!(
        k.admin
            .set_admin(&acting, &ada.id, true, t0())
            .await
            .unwrap()
            .is_admin
    );
    assert_eq!(
        k.live_sessions(&ada.id).await,
        0,
        "a role change ends the sessions"
    );
    k.session(&ada.id, t0()).await;
    assert!(
        !k.admin
            .set_admin(&acting, &ada.id, false, t0())
            .await
            .unwrap()
            .is_admin
    );
    k.session(&ada.id, t0()).await;
    k.session(&ada.id, t0()).await;
    assert_eq!(
        k.admin.end_sessions(&acting, &ada.id, t0()).await.unwrap(),
        2
    );
    assert!(matches!(
        k.admin.resend_verification(&acting, &ada.id, t0()).await,
        Err(AdminError::AlreadyVerified)
    ));
    let bob = k.account("bob@example.com", false, false, false).await;
    k.admin
        .resend_verification(&acting, &bob.id, t0())
        .await
        .unwrap();
    assert_eq!(k.mailer.sent().len(), 1);
    assert_eq!(k.mailer.sent()[0].to.as_str(), "bob@example.com");
    let actions: Vec<String> = k.entries().into_iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            "admin.grant",
            "admin.revoke",
            "admin.end_sessions",
            "admin.resend_verification"
        ]
    );
    assert!(matches!(
        k.admin.lock(&acting, &UserId::generate(), t0()).await,
        Err(AdminError::NoAccount)
    ));
}

#[tokio::test]
async fn lookups_are_exact_and_audited_without_the_address() {
    let k = kit();
    let (_, acting) = k.acting(t0()).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    let found = k
        .admin
        .find(&acting, "  ADA@Example.com ", t0())
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.id), Some(ada.id));
    assert!(k
        .admin
        .find(&acting, "ad@example.com", t0())
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        k.admin.find(&acting, "<script>", t0()).await,
        Err(AdminError::InvalidEmail)
    ));
    let entries = k.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].subject, entries[0].detail.as_str()),
        (Some(ada.id), "found")
    );
    assert_eq!(
        (entries[1].subject, entries[1].detail.as_str()),
        (None, "no match")
    );
    assert!(entries.iter().all(|e| !e.detail.contains("example")));
}

#[tokio::test]
async fn audit_pages_are_recorded_and_filter() {
    let k = kit();
    let (_, acting) = k.acting(t0()).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    k.admin.view(&acting, &ada.id, t0()).await.unwrap();
    let filter = AuditFilter {
        user: Some(ada.id),
        action: None,
    };
    let (page, more) = k.admin.audit_page(&acting, &filter, 1, t0()).await.unwrap();
    // Recorded before it is read: the page shows its own entry and the view, both about Ada.
    assert_eq!((page.len(), more), (2, false));
    assert_eq!(page[0].action, "admin.view_audit");
    assert_eq!(k.entries().last().unwrap().action, "admin.view_audit");
    // 120 more entries: three pages of 50, 50 and the rest, each read recorded once.
    for _ in 0..120 {
        k.admin.view(&acting, &ada.id, t0()).await.unwrap();
    }
    let all = AuditFilter::default();
    let before = k.entries().len();
    let (p1, more1) = k.admin.audit_page(&acting, &all, 1, t0()).await.unwrap();
    assert_eq!(k.entries().len(), before + 1);
    let (p2, more2) = k.admin.audit_page(&acting, &all, 2, t0()).await.unwrap();
    let (p3, more3) = k.admin.audit_page(&acting, &all, 3, t0()).await.unwrap();
    let (p4, more4) = k.admin.audit_page(&acting, &all, 4, t0()).await.unwrap();
    assert_eq!((p1.len(), more1, p2.len(), more2), (50, true, 50, true));
    assert!(!p3.is_empty() && p3.len() < 50 && !more3, "{}", p3.len());
    assert!(p4.is_empty() && !more4);
    // Newest first across pages (each read adds an entry at the top, so a page can repeat the
    // previous page's last entry; it never skips one).
    assert!(p1.last().unwrap().seq >= p2[0].seq && p2.last().unwrap().seq >= p3[0].seq);
    assert!(p1.windows(2).all(|w| w[0].seq > w[1].seq));
}

/// A store that takes no entry.
struct Broken;

#[async_trait]
impl AuditStore for Broken {
    async fn append(
        &self,
        _: &(dyn for<'h> Fn(Option<&'h AuditEntry>) -> AuditEntry + Send + Sync),
    ) -> Result<AuditEntry, AuditError> {
        Err(AuditError::Store("down".into()))
    }
    async fn range(&self, _: u64, _: usize) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(Vec::new())
    }
    async fn purge_through(&self, _: u64) -> Result<usize, AuditError> {
        Ok(0)
    }
    async fn page(
        &self,
        _: &AuditFilter,
        _: Option<u64>,
        _: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn without_an_audit_entry_nothing_happens() {
    let k = kit_over(Arc::new(Broken), Arc::new(MemoryAudit::default()));
    let (_, acting) = k.acting(t0()).await;
    let ada = k.account("ada@example.com", false, false, true).await;
    k.session(&ada.id, t0()).await;
    assert!(matches!(
        k.admin.lock(&acting, &ada.id, t0()).await,
        Err(AdminError::Audit(_))
    ));
    assert!(matches!(
        k.admin.end_sessions(&acting, &ada.id, t0()).await,
        Err(AdminError::Audit(_))
    ));
    assert!(matches!(
        k.admin.set_admin(&acting, &ada.id, true, t0()).await,
        Err(AdminError::Audit(_))
    ));
    let after = k.auth.account(&ada.id).await.unwrap().unwrap();
    assert!(!after.locked && !after.is_admin);
    assert_eq!(k.live_sessions(&ada.id).await, 1);
}
