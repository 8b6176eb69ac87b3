//! AuthService use cases over the memory adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_auth::{
    AccountStore, Argon2id, AuthConfig, AuthError, AuthService, Email, HashParams, PasswordPolicy,
    PasswordRejection, TokenHasher, UserId,
};
use phaze_store_memory::{MemoryAccounts, MemoryMailer, MemoryTokens};
use secrecy::{SecretBox, SecretString};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const PW: &str = "correct horse battery staple";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

struct Kit {
    auth: AuthService,
    accounts: Arc<MemoryAccounts>,
    mailer: Arc<MemoryMailer>,
}

fn kit_with(params: HashParams) -> Kit {
    let accounts = Arc::new(MemoryAccounts::default());
    let mailer = Arc::new(MemoryMailer::default());
    let auth = AuthService::new(
        accounts.clone(),
        Arc::new(MemoryTokens::default()),
        mailer.clone(),
        Arc::new(Argon2id::new(params).unwrap()),
        TokenHasher::new(SecretBox::new(Box::new([3; 32]))),
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            public_url: "https://portal.example".into(),
        },
    );
    Kit {
        auth,
        accounts,
        mailer,
    }
}

fn kit() -> Kit {
    kit_with(HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    })
}

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

    /// Registers and verifies `email`; returns the account's id.
    async fn verified(&self, email: &str) -> UserId {
        self.auth
            .register(email, pw(PW), &pw(PW), t0())
            .await
            .unwrap();
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
    k.auth
        .register("  Ada@Example.com ", pw(PW), &pw(PW), t0())
        .await
        .unwrap();
    let mail = k.mailer.sent().pop().unwrap();
    assert_eq!(mail.to.as_str(), "ada@example.com");
    assert!(mail.body.contains("https://portal.example/verify/"));
    assert!(matches!(
        k.auth.login("ada@example.com", pw(PW)).await,
        Err(AuthError::EmailNotVerified)
    ));
    let account = k
        .auth
        .verify_email(&k.token_for("ada@example.com"), t0())
        .await
        .unwrap();
    assert!(account.email_verified);
    assert_eq!(account.display_name.as_str(), "ada");
    let logged = k.auth.login("ADA@example.com", pw(PW)).await.unwrap();
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
    k.auth
        .register(
            "ada@example.com",
            pw("another long passphrase"),
            &pw("another long passphrase"),
            t0(),
        )
        .await
        .unwrap();
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
    k.auth
        .register("ada@example.com", pw(PW), &pw(PW), t0())
        .await
        .unwrap();
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
    k.auth
        .register("bob@example.com", pw(PW), &pw(PW), t0())
        .await
        .unwrap();
    let late = t0() + Duration::hours(24);
    assert!(matches!(
        k.auth
            .verify_email(&k.token_for("bob@example.com"), late)
            .await,
        Err(AuthError::InvalidToken)
    ));
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
                k.auth.login(email, pw(password)).await,
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
        old.accounts.clone(),
        Arc::new(MemoryTokens::default()),
        old.mailer.clone(),
        Arc::new(
            Argon2id::new(HashParams {
                m_cost: 128,
                t_cost: 2,
                p_cost: 1,
            })
            .unwrap(),
        ),
        TokenHasher::new(SecretBox::new(Box::new([3; 32]))),
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            public_url: String::new(),
        },
    );
    new.login("ada@example.com", pw(PW)).await.unwrap();
    let upgraded = old.accounts.by_id(&account.id).await.unwrap().unwrap();
    assert!(
        upgraded.password_hash.contains("m=128,t=2"),
        "{}",
        upgraded.password_hash
    );
    new.login("ada@example.com", pw(PW)).await.unwrap();
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
    assert!(k.auth.login("ada@example.com", pw(PW)).await.is_err());
    k.auth
        .login("ada@example.com", pw("a brand new passphrase"))
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
        k.auth.register("nope", pw(PW), &pw(PW), t0()).await,
        Err(AuthError::InvalidEmail)
    ));
    assert!(matches!(
        k.auth
            .register("a@example.com", pw(PW), &pw("different"), t0())
            .await,
        Err(AuthError::PasswordMismatch)
    ));
    assert!(matches!(
        k.auth
            .register(
                "a@example.com",
                pw("qwertyuiop123"),
                &pw("qwertyuiop123"),
                t0()
            )
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
    ] {
        assert!(Email::parse(bad).is_none(), "{bad:?}");
    }
}
