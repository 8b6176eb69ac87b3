//! AuthService use cases over the memory adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod counting;
mod two_factor;

use phaze_auth::{
    Argon2id, AuthConfig, AuthError, AuthKeys, AuthService, Email, EmailIndexKey, HashParams,
    PasswordPolicy, PasswordRejection, SealedAccounts, TokenHasher, UserId,
};
use phaze_sessions::{Sealer, SealingKey};
use phaze_store_memory::{MemoryAccounts, MemoryMailer, MemoryStepLedger, MemoryTokens};
use secrecy::{SecretBox, SecretString};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const PW: &str = "correct horse battery staple";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// The token pepper and the sealing key every test service uses.
fn keys() -> AuthKeys {
    keys_sealing_with(&[[4; 32]])
}

/// [`keys`] with the session key list `sealing` (the first seals).
fn keys_sealing_with(sealing: &[[u8; 32]]) -> AuthKeys {
    AuthKeys {
        tokens: TokenHasher::new(SecretBox::new(Box::new([3; 32]))),
        sealer: Sealer::new(sealing.iter().map(SealingKey::new).collect()).unwrap(),
        email_index: EmailIndexKey::new(SecretBox::new(Box::new([5; 32]))),
    }
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

struct Kit {
    auth: AuthService,
    /// The store as the service sees it: accounts in, accounts out.
    accounts: SealedAccounts,
    /// The store itself, sealed records.
    store: Arc<MemoryAccounts>,
    mailer: Arc<MemoryMailer>,
}

fn kit_with(params: HashParams) -> Kit {
    kit_on(Arc::new(MemoryAccounts::default()), params, keys())
}

/// A kit over an existing account store, with `keys`.
fn kit_on(store: Arc<MemoryAccounts>, params: HashParams, keys: AuthKeys) -> Kit {
    let mailer = Arc::new(MemoryMailer::default());
    let auth = AuthService::new(
        store.clone(),
        Arc::new(MemoryTokens::default()),
        Arc::new(MemoryStepLedger::default()),
        mailer.clone(),
        Arc::new(Argon2id::new(params).unwrap()),
        keys,
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            public_url: "https://portal.example".into(),
            letters: phaze_auth::Letters::default(),
        },
    );
    Kit {
        accounts: auth.accounts().clone(),
        auth,
        store,
        mailer,
    }
}

fn kit() -> Kit {
    kit_with(CHEAP)
}

/// argon2id parameters that cost next to nothing, for tests.
const CHEAP: HashParams = HashParams {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

impl Kit {
    fn token_for(&self, to: &str) -> String {
        let mail = self
            .mailer
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to)
            .unwrap();
        let start = mail.body.find("/verify/").unwrap() + 8;
        mail.body[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// Registers `email` with `password`, finishing the registration as the portal does after
    /// answering.
    async fn register(&self, email: &str, password: &str) {
        let job = self
            .auth
            .register(email, pw(password), &pw(password))
            .await
            .unwrap();
        self.auth.complete_registration(job, t0()).await.unwrap();
    }

    /// An account left unconfirmed by an older version of Phaze (which created accounts at
    /// registration), with `password`.
    async fn legacy_unconfirmed(&self, email: &str, password: &str) -> phaze_auth::Account {
        let hasher = Argon2id::new(HashParams {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        let email = Email::parse(email).unwrap();
        let account = phaze_auth::Account {
            id: UserId::generate(),
            display_name: phaze_auth::DisplayName::parse(email.local_part()).unwrap(),
            email,
            email_verified: false,
            password_hash: hasher.hash_sync(password).unwrap(),
            is_admin: false,
            locked: false,
            created_at: t0(),
            password_changed_at: t0(),
            two_factor: None,
        };
        self.accounts.insert(&account).await.unwrap();
        account
    }

    /// Registers and verifies `email`; returns the account's id.
    async fn verified(&self, email: &str) -> UserId {
        self.register(email, PW).await;
        self.auth
            .verify_email(&self.token_for(email), t0())
            .await
            .unwrap()
            .id
    }
}

#[tokio::test]
async fn register_then_verify_then_login() {
    let k = kit();
    k.register("  Ada@Example.com ", PW).await;
    let mail = k.mailer.sent().pop().unwrap();
    assert_eq!(mail.to.as_str(), "ada@example.com");
    assert!(mail.body.contains("https://portal.example/verify/"));
    // Pending until the link is used: no account, so no password works yet.
    assert!(matches!(
        k.auth.login("ada@example.com", pw(PW), None, t0()).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(k
        .accounts
        .by_email(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .is_none());
    let account = k
        .auth
        .verify_email(&k.token_for("ada@example.com"), t0())
        .await
        .unwrap();
    assert!(account.email_verified);
    assert_eq!(account.display_name.as_str(), "ada");
    let logged = k
        .auth
        .login("ADA@example.com", pw(PW), None, t0())
        .await
        .unwrap();
    assert_eq!(logged.id, account.id);
    assert!(logged.password_hash.starts_with("$argon2id$"));
    assert!(!logged.password_hash.contains(PW));
}

#[tokio::test]
async fn registering_a_taken_address_notifies_the_owner_and_changes_nothing() {
    let k = kit();
    k.verified("ada@example.com").await;
    let before = k
        .accounts
        .by_email(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap();
    k.register("ada@example.com", "another long passphrase")
        .await;
    let notice = k.mailer.sent().pop().unwrap();
    assert!(notice.body.contains("already have an account"));
    assert!(!notice.body.contains("/verify/"));
    let after = k
        .accounts
        .by_email(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn verification_tokens_are_single_use_and_expire() {
    let k = kit();
    k.register("ada@example.com", PW).await;
    let token = k.token_for("ada@example.com");
    assert!(matches!(
        k.auth.verify_email("wrong", t0()).await,
        Err(AuthError::InvalidToken)
    ));
    k.auth.verify_email(&token, t0()).await.unwrap();
    assert!(matches!(
        k.auth.verify_email(&token, t0()).await,
        Err(AuthError::InvalidToken)
    ));
    k.register("bob@example.com", PW).await;
    let late = t0() + Duration::hours(24);
    assert!(matches!(
        k.auth
            .verify_email(&k.token_for("bob@example.com"), late)
            .await,
        Err(AuthError::InvalidToken)
    ));
    // The pending registration expired with its link: no account, and the address is free.
    assert!(matches!(
        k.auth.login("bob@example.com", pw(PW), None, t0()).await,
        Err(AuthError::InvalidCredentials)
    ));
    k.register("bob@example.com", PW).await;
    k.auth
        .verify_email(&k.token_for("bob@example.com"), t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn login_failures_are_one_error() {
    let k = kit();
    k.verified("ada@example.com").await;
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PW),
        ("not an email", PW),
        ("", ""),
    ] {
        assert!(
            matches!(
                k.auth.login(email, pw(password), None, t0()).await,
                Err(AuthError::InvalidCredentials)
            ),
            "{email}"
        );
    }
}

#[tokio::test]
async fn login_upgrades_outdated_hashes() {
    let old = kit_with(HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    });
    old.verified("ada@example.com").await;
    let account = old
        .accounts
        .by_email(&Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(account.password_hash.contains("m=64,t=1"));
    // Same store, stronger parameters: the next login re-hashes.
    let new = AuthService::new(
        old.store.clone(),
        Arc::new(MemoryTokens::default()),
        Arc::new(MemoryStepLedger::default()),
        old.mailer.clone(),
        Arc::new(
            Argon2id::new(HashParams {
                m_cost: 128,
                t_cost: 2,
                p_cost: 1,
            })
            .unwrap(),
        ),
        keys(),
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            public_url: String::new(),
            letters: phaze_auth::Letters::default(),
        },
    );
    new.login("ada@example.com", pw(PW), None, t0())
        .await
        .unwrap();
    let upgraded = old.accounts.by_id(&account.id).await.unwrap().unwrap();
    assert!(
        upgraded.password_hash.contains("m=128,t=2"),
        "{}",
        upgraded.password_hash
    );
    new.login("ada@example.com", pw(PW), None, t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn password_change_checks_the_current_one_and_notifies() {
    let k = kit();
    let id = k.verified("ada@example.com").await;
    assert!(matches!(
        k.auth
            .change_password(&id, pw("wrong"), pw("a brand new passphrase"), t0())
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        k.auth
            .change_password(&id, pw(PW), pw("password"), t0())
            .await,
        Err(AuthError::WeakPassword(PasswordRejection::TooShort(12)))
    ));
    k.auth
        .change_password(&id, pw(PW), pw("a brand new passphrase"), t0())
        .await
        .unwrap();
    assert!(k
        .mailer
        .sent()
        .pop()
        .unwrap()
        .subject
        .contains("password was changed"));
    assert!(k
        .auth
        .login("ada@example.com", pw(PW), None, t0())
        .await
        .is_err());
    k.auth
        .login("ada@example.com", pw("a brand new passphrase"), None, t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn display_names_are_validated() {
    let k = kit();
    let id = k.verified("ada@example.com").await;
    for bad in ["", "   ", "a\u{0}b", "line\nbreak", &"x".repeat(65)] {
        assert!(
            matches!(
                k.auth.update_display_name(&id, bad).await,
                Err(AuthError::InvalidDisplayName(_))
            ),
            "{bad:?}"
        );
    }
    let a = k
        .auth
        .update_display_name(&id, "  <b>Ada</b>  ")
        .await
        .unwrap();
    assert_eq!(
        a.display_name.as_str(),
        "<b>Ada</b>",
        "trimmed, kept as typed"
    );
}

#[tokio::test]
async fn registration_input_is_checked() {
    let k = kit();
    assert!(matches!(
        k.auth.register("nope", pw(PW), &pw(PW)).await,
        Err(AuthError::InvalidEmail)
    ));
    assert!(matches!(
        k.auth
            .register("a@example.com", pw(PW), &pw("different"))
            .await,
        Err(AuthError::PasswordMismatch)
    ));
    assert!(matches!(
        k.auth
            .register("a@example.com", pw("qwertyuiop123"), &pw("qwertyuiop123"))
            .await,
        Err(AuthError::WeakPassword(PasswordRejection::Common))
    ));
    assert!(k.mailer.sent().is_empty());
}

#[test]
fn email_normalisation_and_shape() {
    assert_eq!(
        Email::parse(" Ada@Example.COM ").unwrap().as_str(),
        "ada@example.com"
    );
    for bad in [
        "",
        "ada",
        "@example.com",
        "ada@",
        "ada@example",
        "a b@example.com",
        "ada@exa mple.com",
        "a\r\n@example.com",
        "<a>@example.com",
        "a@b@example.com",
        ".a@example.com",
        "a..b@example.com",
        "a@example..com",
        &format!("{}@example.com", "a".repeat(65)),
        // Invisible and control characters are refused, not dropped.
        "ad\u{200B}a@example.com",
        "ad\u{AD}a@example.com",
        "ada@exam\u{AD}ple.com",
        "\u{202E}ada@example.com",
        "ada\u{2066}@example.com",
        "ada@example.com\u{FEFF}",
        "ada\u{0}@example.com",
        // Domains the mailer refuses are refused before anything is stored.
        "zz@example-.com",
        "zz@-example.com",
        "zz@exa_mple.com",
        "zz@example.com.",
        "zz@[192.0.2.1]",
    ] {
        assert!(Email::parse(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn one_mailbox_has_one_spelling() {
    let canonical = |raw: &str| Email::parse(raw).unwrap().as_str().to_owned();
    // Fullwidth letters, NFD and NFC, and Unicode and ASCII (punycode) domains each give one
    // address: two spellings must never be two accounts.
    assert_eq!(
        canonical("\u{FF41}\u{FF44}\u{FF41}@example.com"),
        "ada@example.com"
    );
    assert_eq!(canonical("ada@\u{FF45}xample.com"), "ada@example.com");
    assert_eq!(
        canonical("rene\u{301}e@example.com"),
        canonical("ren\u{E9}e@example.com")
    );
    assert_eq!(
        canonical("ada@b\u{FC}cher.example"),
        "ada@xn--bcher-kva.example"
    );
    assert_eq!(
        canonical("ada@xn--bcher-kva.example"),
        "ada@xn--bcher-kva.example"
    );
    assert_eq!(
        canonical("ada@BU\u{308}CHER.example"),
        "ada@xn--bcher-kva.example"
    );
    // Every accepted address is one the mailer can send to.
    for raw in [
        "ada@example.com",
        "ada@b\u{FC}cher.example",
        "ren\u{E9}e@example.com",
    ] {
        let email = Email::parse(raw).unwrap();
        let (local, domain) = email.as_str().split_once('@').unwrap();
        assert!(lettre::Address::new(local, domain).is_ok(), "{raw:?}");
    }
}

/// A service whose every port counts its calls into one log.
fn counting_kit() -> (AuthService, counting::Calls, Arc<MemoryMailer>) {
    use counting::{Calls, Counting};
    let calls = Calls::default();
    let mailer = Arc::new(MemoryMailer::default());
    let auth = AuthService::new(
        Arc::new(Counting {
            inner: Arc::new(MemoryAccounts::default()),
            calls: calls.clone(),
        }),
        Arc::new(Counting {
            inner: Arc::new(MemoryTokens::default()),
            calls: calls.clone(),
        }),
        Arc::new(MemoryStepLedger::default()),
        Arc::new(Counting {
            inner: mailer.clone(),
            calls: calls.clone(),
        }),
        Arc::new(Counting {
            inner: Arc::new(
                Argon2id::new(HashParams {
                    m_cost: 64,
                    t_cost: 1,
                    p_cost: 1,
                })
                .unwrap(),
            ),
            calls: calls.clone(),
        }),
        keys(),
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            public_url: "https://portal.example".into(),
            letters: phaze_auth::Letters::default(),
        },
    );
    (auth, calls, mailer)
}

/// Registers and confirms `email` through `auth`, reading the link from `mailer`.
async fn confirmed(auth: &AuthService, mailer: &MemoryMailer, email: &str) {
    let job = auth.register(email, pw(PW), &pw(PW)).await.unwrap();
    auth.complete_registration(job, t0()).await.unwrap();
    let mail = mailer.sent().pop().unwrap();
    let token = &mail.body[mail.body.find("/verify/").unwrap() + 8..];
    auth.verify_email(token.split_whitespace().next().unwrap(), t0())
        .await
        .unwrap();
}

/// Registration answers before anything depends on the address: for a new address, a confirmed
/// one and a pending one, the request path hashes the password and touches no store and no
/// mailer, so neither its timing nor a store's failure can tell them apart (finding 12.2). The
/// differing work is all in `complete_registration`, which the portal runs after answering.
#[tokio::test]
async fn registration_does_the_same_work_before_answering_whether_or_not_the_address_is_taken() {
    let (auth, calls, mailer) = counting_kit();
    let finish = |job| auth.complete_registration(job, t0());
    // A confirmed account, and a pending registration.
    let job = auth
        .register("known@example.com", pw(PW), &pw(PW))
        .await
        .unwrap();
    finish(job).await.unwrap();
    let mail = mailer.sent().pop().unwrap();
    let token = &mail.body[mail.body.find("/verify/").unwrap() + 8..];
    auth.verify_email(token.split_whitespace().next().unwrap(), t0())
        .await
        .unwrap();
    let job = auth
        .register("pending@example.com", pw(PW), &pw(PW))
        .await
        .unwrap();
    finish(job).await.unwrap();
    calls.take();

    let mut request_paths = Vec::new();
    let mut jobs = Vec::new();
    for email in [
        "new@example.com",
        "known@example.com",
        "pending@example.com",
    ] {
        jobs.push(auth.register(email, pw(PW), &pw(PW)).await.unwrap());
        request_paths.push(calls.take());
    }
    assert_eq!(request_paths[0], ["hasher.hash"], "new address");
    assert_eq!(request_paths[1], request_paths[0], "confirmed address");
    assert_eq!(request_paths[2], request_paths[0], "pending address");
    // Off the request path, the work differs, as it may.
    for job in jobs {
        finish(job).await.unwrap();
    }
    assert_eq!(
        calls.take(),
        [
            "accounts.by_email",
            "tokens.issue",
            "mailer.send",
            "accounts.by_email",
            "mailer.send",
            "accounts.by_email",
            "tokens.issue",
            "mailer.send"
        ]
    );
}

/// Login does one password verification and nothing else on every failing path: wrong password,
/// unknown address, malformed address. The hasher makes the unknown case cost the same as the
/// known one (its own unit test), so equal work is proved by counting, not timing (finding 12.9).
#[tokio::test]
async fn failed_logins_do_the_same_work_for_unknown_and_known_accounts() {
    let (auth, calls, mailer) = counting_kit();
    confirmed(&auth, &mailer, "known@example.com").await;
    calls.take();
    let mut paths = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        assert!(matches!(
            auth.login(email, pw("wrong password here"), None, t0())
                .await,
            Err(AuthError::InvalidCredentials)
        ));
        paths.push(calls.take());
    }
    assert_eq!(paths[0], ["accounts.by_email", "hasher.verify"]);
    assert_eq!(paths[1], paths[0]);
    // A malformed address skips the lookup but not the hash.
    assert!(auth
        .login("not an address", pw(PW), None, t0())
        .await
        .is_err());
    assert_eq!(calls.take(), ["hasher.verify"]);
}

/// Finding 12.3: registering someone else's address first gives the attacker nothing. No account
/// exists until a link is used; the owner's own registration kills the attacker's link; the
/// owner's link activates the owner's password.
#[tokio::test]
async fn pre_registering_an_address_does_not_take_its_account() {
    let k = kit();
    k.register("victim@example.com", "attacker chosen passphrase")
        .await;
    let attackers_link = k.token_for("victim@example.com");
    assert!(matches!(
        k.auth
            .login(
                "victim@example.com",
                pw("attacker chosen passphrase"),
                None,
                t0()
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    // The owner registers: a new pending registration, the older link dies.
    k.register("victim@example.com", PW).await;
    let owners_link = k.token_for("victim@example.com");
    assert_ne!(owners_link, attackers_link);
    assert!(matches!(
        k.auth.verify_email(&attackers_link, t0()).await,
        Err(AuthError::InvalidToken)
    ));
    let account = k.auth.verify_email(&owners_link, t0()).await.unwrap();
    assert!(account.email_verified);
    k.auth
        .login("victim@example.com", pw(PW), None, t0())
        .await
        .unwrap();
    assert!(matches!(
        k.auth
            .login(
                "victim@example.com",
                pw("attacker chosen passphrase"),
                None,
                t0()
            )
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    // Once confirmed, a new registration only notifies, and the link of none works.
    k.register("victim@example.com", "attacker chosen passphrase")
        .await;
    assert!(k
        .mailer
        .sent()
        .pop()
        .unwrap()
        .body
        .contains("already have an account"));
    k.auth
        .login("victim@example.com", pw(PW), None, t0())
        .await
        .unwrap();
}

/// The password that becomes active is the one of the registration whose link was used, and
/// only the newest link of an address works.
#[tokio::test]
async fn the_newest_registration_of_an_address_is_the_one_that_counts() {
    let k = kit();
    k.register("ada@example.com", "first chosen passphrase")
        .await;
    let first = k.token_for("ada@example.com");
    k.register("ada@example.com", "second chosen passphrase")
        .await;
    let second = k.token_for("ada@example.com");
    assert!(matches!(
        k.auth.verify_email(&first, t0()).await,
        Err(AuthError::InvalidToken)
    ));
    k.auth.verify_email(&second, t0()).await.unwrap();
    k.auth
        .login(
            "ada@example.com",
            pw("second chosen passphrase"),
            None,
            t0(),
        )
        .await
        .unwrap();
    assert!(k
        .auth
        .login("ada@example.com", pw("first chosen passphrase"), None, t0())
        .await
        .is_err());
}

/// An account an older version stored unconfirmed (with whatever password its registrant chose)
/// is confirmed with the password of the registration whose link is used, keeping its id.
#[tokio::test]
async fn an_unconfirmed_account_from_an_older_version_takes_the_password_of_the_used_link() {
    let k = kit();
    let legacy = k
        .legacy_unconfirmed("ada@example.com", "attacker chosen passphrase")
        .await;
    k.register("ada@example.com", PW).await;
    let account = k
        .auth
        .verify_email(&k.token_for("ada@example.com"), t0())
        .await
        .unwrap();
    assert_eq!(account.id, legacy.id);
    assert!(account.email_verified);
    k.auth
        .login("ada@example.com", pw(PW), None, t0())
        .await
        .unwrap();
    assert!(k
        .auth
        .login(
            "ada@example.com",
            pw("attacker chosen passphrase"),
            None,
            t0()
        )
        .await
        .is_err());
}

#[tokio::test]
async fn roles_change_through_the_service_and_only_for_real_accounts() {
    let k = kit();
    let id = k.verified("ada@example.com").await;
    let account = k.auth.set_admin(" ADA@example.com ", true).await.unwrap();
    assert_eq!(account.id, id);
    assert!(k.auth.account(&id).await.unwrap().unwrap().is_admin);
    assert!(
        !k.auth
            .set_admin("ada@example.com", false)
            .await
            .unwrap()
            .is_admin
    );
    assert!(!k.auth.account(&id).await.unwrap().unwrap().is_admin);
    assert!(matches!(
        k.auth.set_admin("nobody@example.com", true).await,
        Err(AuthError::AccountGone)
    ));
    for hostile in ["", "not an address", "ada@example.com\u{200b}", "a@b"] {
        assert!(
            matches!(
                k.auth.set_admin(hostile, true).await,
                Err(AuthError::InvalidEmail)
            ),
            "{hostile:?}"
        );
    }
    assert!(k.auth.account(&UserId::generate()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_new_link_goes_only_to_an_unconfirmed_account() {
    let k = kit();
    k.verified("ada@example.com").await;
    let sent = k.mailer.sent().len();
    for email in ["ada@example.com", "nobody@example.com", "not an address"] {
        k.auth.resend_verification(email, t0()).await.unwrap();
    }
    assert_eq!(
        k.mailer.sent().len(),
        sent,
        "nothing for confirmed or unknown addresses"
    );
    k.legacy_unconfirmed("bob@example.com", PW).await;
    assert!(matches!(
        k.auth.login("bob@example.com", pw(PW), None, t0()).await,
        Err(AuthError::EmailNotVerified)
    ));
    k.auth
        .resend_verification("bob@example.com", t0())
        .await
        .unwrap();
    assert_eq!(k.mailer.sent().len(), sent + 1);
    k.auth
        .verify_email(&k.token_for("bob@example.com"), t0())
        .await
        .unwrap();
    k.auth
        .login("bob@example.com", pw(PW), None, t0())
        .await
        .unwrap();
}

impl Kit {
    /// The token of the newest reset link mailed to `to`.
    fn reset_token_for(&self, to: &str) -> String {
        let mail = self
            .mailer
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to.as_str() == to && m.body.contains("/password/reset/"))
            .unwrap();
        let start = mail.body.find("/password/reset/").unwrap() + 16;
        mail.body[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    async fn request_reset(&self, email: &str, now: OffsetDateTime) {
        let job = self.auth.request_password_reset(email);
        self.auth.complete_reset_request(job, now).await.unwrap();
    }
}

const NEW_PW: &str = "a brand new passphrase here";

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_notifies() {
    let k = kit();
    k.verified("reset@example.com").await;
    k.request_reset("Reset@Example.com", t0()).await;
    let token = k.reset_token_for("reset@example.com");
    k.auth.check_reset_token(&token, t0()).await.unwrap();
    let account = k
        .auth
        .reset_password(&token, pw(NEW_PW), &pw(NEW_PW), t0())
        .await
        .unwrap();
    assert_eq!(account.password_changed_at, t0());
    assert!(k
        .auth
        .login("reset@example.com", pw(NEW_PW), None, t0())
        .await
        .is_ok());
    assert!(matches!(
        k.auth.login("reset@example.com", pw(PW), None, t0()).await,
        Err(AuthError::InvalidCredentials)
    ));
    let notice = k.mailer.sent().pop().unwrap();
    assert_eq!(notice.subject, "Your password was reset");
    // Single use.
    assert!(matches!(
        k.auth.check_reset_token(&token, t0()).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        k.auth
            .reset_password(
                &token,
                pw("yet another passphrase"),
                &pw("yet another passphrase"),
                t0()
            )
            .await,
        Err(AuthError::InvalidToken)
    ));
}

#[tokio::test]
async fn reset_links_expire_and_a_new_request_kills_the_older_link() {
    let k = kit();
    k.verified("twice@example.com").await;
    k.request_reset("twice@example.com", t0()).await;
    let older = k.reset_token_for("twice@example.com");
    k.request_reset("twice@example.com", t0()).await;
    let newer = k.reset_token_for("twice@example.com");
    assert_ne!(older, newer);
    assert!(matches!(
        k.auth.check_reset_token(&older, t0()).await,
        Err(AuthError::InvalidToken)
    ));
    let late = t0() + Duration::hours(1);
    assert!(matches!(
        k.auth
            .reset_password(&newer, pw(NEW_PW), &pw(NEW_PW), late)
            .await,
        Err(AuthError::InvalidToken)
    ));
    assert!(
        k.auth
            .login("twice@example.com", pw(PW), None, t0())
            .await
            .is_ok(),
        "unchanged"
    );
}

#[tokio::test]
async fn a_refused_new_password_leaves_the_link_usable() {
    let k = kit();
    k.verified("weak@example.com").await;
    k.request_reset("weak@example.com", t0()).await;
    let token = k.reset_token_for("weak@example.com");
    assert!(matches!(
        k.auth
            .reset_password(&token, pw("short"), &pw("short"), t0())
            .await,
        Err(AuthError::WeakPassword(PasswordRejection::TooShort { .. }))
    ));
    assert!(matches!(
        k.auth
            .reset_password(&token, pw(NEW_PW), &pw("something else entirely"), t0())
            .await,
        Err(AuthError::PasswordMismatch)
    ));
    assert!(matches!(
        k.auth
            .reset_password(
                &token,
                pw("weak@example.com!!"),
                &pw("weak@example.com!!"),
                t0()
            )
            .await,
        Err(AuthError::WeakPassword(_))
    ));
    k.auth.check_reset_token(&token, t0()).await.unwrap();
    k.auth
        .reset_password(&token, pw(NEW_PW), &pw(NEW_PW), t0())
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_tokens_are_invalid_and_change_nothing() {
    let k = kit();
    k.verified("host@example.com").await;
    k.request_reset("host@example.com", t0()).await;
    let real = k.reset_token_for("host@example.com");
    let verify_link = {
        k.register("other@example.com", PW).await;
        k.token_for("other@example.com")
    };
    for token in [
        String::new(),
        "x".into(),
        "../../etc/passwd".into(),
        "%00".into(),
        "é".repeat(500),
        format!("{real}x"),
        real[..real.len() - 1].to_owned(),
        verify_link, // a verification link is not a reset link
    ] {
        assert!(
            matches!(
                k.auth
                    .reset_password(&token, pw(NEW_PW), &pw(NEW_PW), t0())
                    .await,
                Err(AuthError::InvalidToken)
            ),
            "{token:.40}"
        );
    }
    k.auth.check_reset_token(&real, t0()).await.unwrap();
    assert!(k
        .auth
        .login("host@example.com", pw(PW), None, t0())
        .await
        .is_ok());
}

/// A reset request touches no store and no mailer before answering, for a confirmed account, an
/// unknown address and a malformed address; what differs runs after.
#[tokio::test]
async fn a_reset_request_does_the_same_work_before_answering_whatever_the_address() {
    let (auth, calls, mailer) = counting_kit();
    confirmed(&auth, &mailer, "known@example.com").await;
    calls.take();
    let mut jobs = Vec::new();
    for email in ["known@example.com", "nobody@example.com", "not an address"] {
        jobs.push(auth.request_password_reset(email));
        assert!(
            calls.take().is_empty(),
            "{email}: nothing before the answer"
        );
    }
    for job in jobs {
        auth.complete_reset_request(job, t0()).await.unwrap();
    }
    assert_eq!(
        calls.take(),
        [
            "accounts.by_email",
            "tokens.issue",
            "mailer.send",
            "accounts.by_email"
        ]
    );
}

/// The memory of opened accounts never outlives the record: a change made through another
/// process (another `SealedAccounts` on the same store) shows at the next read, and a record
/// edited in the store fails closed even though its account was opened before.
#[tokio::test]
async fn remembered_accounts_follow_the_store() {
    use phaze_auth::AccountStore;
    let k = kit();
    let ada = k.verified("ada@example.com").await;
    let bob = k.verified("bob@example.com").await;
    assert_eq!(
        k.auth
            .account(&ada)
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_str(),
        "ada"
    );
    let elsewhere = kit_on(k.store.clone(), CHEAP, keys());
    elsewhere
        .auth
        .update_display_name(&ada, "Grace")
        .await
        .unwrap();
    assert_eq!(
        k.auth
            .account(&ada)
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_str(),
        "Grace"
    );
    // Bob's sealed name put into Ada's record by someone with write access to the store.
    let mut edited = k.store.by_id(&ada).await.unwrap().unwrap();
    edited.sealed_name = k.store.by_id(&bob).await.unwrap().unwrap().sealed_name;
    k.store.update(&edited).await.unwrap();
    assert!(matches!(
        k.auth.account(&ada).await,
        Err(AuthError::Store(_))
    ));
}
