//! Two-factor authentication: enrolment, login with a code, replays, clock skew, recovery codes,
//! turning it off, and the secret sealed at rest.

use phaze_auth::totp::TotpSecret;
use phaze_auth::{AuthError, UserId};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use super::{keys_sealing_with, kit, kit_on, pw, t0, Kit, CHEAP, PW};

/// The app's view of an enrolment: the secret the page showed as text.
fn app(secret: &SecretString) -> TotpSecret {
    TotpSecret::from_base32(secret.expose_secret()).unwrap()
}

fn code(app: &TotpSecret, at: OffsetDateTime) -> String {
    app.code_at(at).unwrap()
}

/// A verified account with 2FA on, enabled at `t0()`: the app and the recovery codes.
async fn enrolled(k: &Kit, email: &str) -> (UserId, TotpSecret, Vec<String>) {
    let id = k.verified(email).await;
    let app = app(&k.auth.two_factor_enrolment(&id).await.unwrap().secret);
    let codes = k
        .auth
        .enable_two_factor(&id, &code(&app, t0()), t0())
        .await
        .unwrap();
    let codes = codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    (id, app, codes)
}

async fn login(
    k: &Kit,
    email: &str,
    code: Option<&str>,
    at: OffsetDateTime,
) -> Result<(), AuthError> {
    k.auth.login(email, pw(PW), code, at).await.map(|_| ())
}

#[tokio::test]
async fn enrolment_shows_one_secret_until_a_valid_code_turns_it_on() {
    let k = kit();
    let id = k.verified("ada@example.com").await;
    let first = k.auth.two_factor_enrolment(&id).await.unwrap();
    let again = k.auth.two_factor_enrolment(&id).await.unwrap();
    assert_eq!(first.secret.expose_secret(), again.secret.expose_secret());
    let url = first.otpauth_url.expose_secret();
    assert!(
        url.starts_with("otpauth://totp/Phaze:ada%40example.com?"),
        "{url}"
    );
    assert!(url.contains(first.secret.expose_secret()), "{url}");
    // Pending: login needs no code yet.
    login(&k, "ada@example.com", None, t0()).await.unwrap();

    let app = app(&first.secret);
    let later = t0() + Duration::minutes(5);
    for wrong in [
        "000000",
        "",
        "abcdef",
        &code(&app, later + Duration::minutes(2)),
    ] {
        assert!(matches!(
            k.auth.enable_two_factor(&id, wrong, later).await,
            Err(AuthError::InvalidCode)
        ));
    }
    login(&k, "ada@example.com", None, later).await.unwrap();
    assert!(!k
        .accounts
        .by_id(&id)
        .await
        .unwrap()
        .unwrap()
        .two_factor_enabled());

    let codes = k
        .auth
        .enable_two_factor(&id, &code(&app, later), later)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert!(matches!(
        k.auth.two_factor_enrolment(&id).await,
        Err(AuthError::TwoFactorOn)
    ));
    let mail = k.mailer.sent().pop().unwrap();
    assert_eq!(mail.subject, "Two-factor authentication is on");
    assert!(!mail.body.contains(codes[0].expose_secret()));
}

#[tokio::test]
async fn login_needs_the_code_and_every_failure_is_a_wrong_password() {
    let k = kit();
    let (_, app, _) = enrolled(&k, "ada@example.com").await;
    let at = t0() + Duration::minutes(10);
    for code_given in [
        None,
        Some("000000"),
        Some(""),
        Some("aaaaa-aaaaa"),
        Some("1234567"),
    ] {
        assert!(
            matches!(
                login(&k, "ada@example.com", code_given, at).await,
                Err(AuthError::InvalidCredentials)
            ),
            "{code_given:?}"
        );
    }
    // A right code with a wrong password is no login either.
    let wrong = k
        .auth
        .login(
            "ada@example.com",
            pw("not the password"),
            Some(&code(&app, at)),
            at,
        )
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    login(&k, "ada@example.com", Some(&code(&app, at)), at)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_code_works_once_per_step_and_one_step_of_skew_either_way() {
    let k = kit();
    let (_, app, _) = enrolled(&k, "ada@example.com").await;
    // The enrolment's own code is spent: a replay of it at once fails.
    assert!(login(&k, "ada@example.com", Some(&code(&app, t0())), t0())
        .await
        .is_err());

    let at = t0() + Duration::minutes(10);
    let now_code = code(&app, at);
    login(&k, "ada@example.com", Some(&now_code), at)
        .await
        .unwrap();
    assert!(matches!(
        login(
            &k,
            "ada@example.com",
            Some(&now_code),
            at + Duration::seconds(5)
        )
        .await,
        Err(AuthError::InvalidCredentials)
    ));
    // The phone 30 s behind or ahead of the server: accepted; 60 s: refused.
    login(
        &k,
        "ada@example.com",
        Some(&code(&app, at - Duration::seconds(30))),
        at,
    )
    .await
    .unwrap();
    login(
        &k,
        "ada@example.com",
        Some(&code(&app, at + Duration::seconds(30))),
        at,
    )
    .await
    .unwrap();
    for off in [-90, -60, 60, 90] {
        let skewed = code(&app, at + Duration::seconds(off));
        assert!(
            login(&k, "ada@example.com", Some(&skewed), at)
                .await
                .is_err(),
            "{off}"
        );
    }
}

#[tokio::test]
async fn ten_parallel_logins_with_one_code_let_one_in() {
    let k = Arc::new(kit());
    let (_, app, codes) = enrolled(&k, "ada@example.com").await;
    let at = t0() + Duration::minutes(10);
    for the_code in [code(&app, at), codes[3].clone()] {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (k, the_code) = (k.clone(), the_code.clone());
                tokio::spawn(async move { login(&k, "ada@example.com", Some(&the_code), at).await })
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            passed += usize::from(task.await.unwrap().is_ok());
        }
        assert_eq!(passed, 1, "{the_code}");
    }
}

#[tokio::test]
async fn recovery_codes_work_once_as_typed_and_a_new_set_ends_the_old() {
    let k = kit();
    let (id, _, codes) = enrolled(&k, "ada@example.com").await;
    let at = t0() + Duration::minutes(10);
    let typed = codes[0].to_uppercase().replace('-', " ");
    login(&k, "ada@example.com", Some(&typed), at)
        .await
        .unwrap();
    assert!(login(&k, "ada@example.com", Some(&codes[0]), at)
        .await
        .is_err());
    let mail = k.mailer.sent().pop().unwrap();
    assert_eq!(mail.subject, "A recovery code was used");
    assert!(mail.body.contains("9 are left"), "{}", mail.body);

    let fresh = k.auth.new_recovery_codes(&id, at).await.unwrap();
    assert!(login(&k, "ada@example.com", Some(&codes[1]), at)
        .await
        .is_err());
    login(&k, "ada@example.com", Some(fresh[1].expose_secret()), at)
        .await
        .unwrap();
    // Another account's code is no code here.
    let (_, _, bobs) = enrolled(&k, "bob@example.com").await;
    assert!(login(&k, "ada@example.com", Some(&bobs[0]), at)
        .await
        .is_err());
    login(&k, "bob@example.com", Some(&bobs[0]), at)
        .await
        .unwrap();
}

#[tokio::test]
async fn turning_it_off_needs_the_password_and_a_code_and_kills_the_codes() {
    let k = kit();
    let (id, app, codes) = enrolled(&k, "ada@example.com").await;
    let at = t0() + Duration::minutes(10);
    let right = code(&app, at);
    for (password, the_code) in [
        ("not the password", right.as_str()),
        (PW, "000000"),
        (PW, ""),
    ] {
        assert!(matches!(
            k.auth
                .disable_two_factor(&id, pw(password), the_code, at)
                .await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(k
        .accounts
        .by_id(&id)
        .await
        .unwrap()
        .unwrap()
        .two_factor_enabled());
    k.auth
        .disable_two_factor(&id, pw(PW), &right, at)
        .await
        .unwrap();
    assert_eq!(
        k.mailer.sent().pop().unwrap().subject,
        "Two-factor authentication is off"
    );
    login(&k, "ada@example.com", None, at).await.unwrap();
    assert!(matches!(
        k.auth.disable_two_factor(&id, pw(PW), &right, at).await,
        Err(AuthError::TwoFactorOff)
    ));
    // Turned on again: a new secret, and the old recovery codes stay dead.
    let again = app_of(&k, &id).await;
    assert_ne!(again.expose_bytes(), app.expose_bytes());
    let later = at + Duration::minutes(1);
    k.auth
        .enable_two_factor(&id, &code(&again, later), later)
        .await
        .unwrap();
    assert!(login(&k, "ada@example.com", Some(&codes[5]), later)
        .await
        .is_err());
}

async fn app_of(k: &Kit, id: &UserId) -> TotpSecret {
    app(&k.auth.two_factor_enrolment(id).await.unwrap().secret)
}

#[tokio::test]
async fn the_secret_is_sealed_at_rest_and_bound_to_its_account() {
    let k = kit();
    let (ada, app, _) = enrolled(&k, "ada@example.com").await;
    let stored = k.accounts.by_id(&ada).await.unwrap().unwrap();
    let sealed = stored.two_factor.clone().unwrap().sealed_secret;
    assert!(!sealed
        .windows(20)
        .any(|w| w == app.expose_bytes().as_slice()));
    assert!(!format!("{stored:?}").contains(&format!("{:?}", &sealed[..8])));

    // Ada's sealed secret grafted onto Bob's account does not open: Bob's login fails closed
    // rather than accepting Ada's codes.
    let (bob, _, _) = enrolled(&k, "bob@example.com").await;
    let mut grafted = k.accounts.by_id(&bob).await.unwrap().unwrap();
    grafted.two_factor.as_mut().unwrap().sealed_secret = sealed;
    k.accounts.update(&grafted).await.unwrap();
    let at = t0() + Duration::minutes(10);
    assert!(matches!(
        login(&k, "bob@example.com", Some(&code(&app, at)), at).await,
        Err(AuthError::Sealed)
    ));
}

/// Two processes that both read the account before either spent the code: the second finds the
/// code still listed in its (stale) copy, and the token store's single use refuses it anyway.
#[tokio::test]
async fn a_recovery_code_spent_elsewhere_is_refused_even_by_a_stale_account() {
    let k = kit();
    let (id, _, codes) = enrolled(&k, "ada@example.com").await;
    let stale = k.accounts.by_id(&id).await.unwrap().unwrap();
    let at = t0() + Duration::minutes(10);
    login(&k, "ada@example.com", Some(&codes[2]), at)
        .await
        .unwrap();
    // The other process's view: the account as read before the spend.
    k.accounts.update(&stale).await.unwrap();
    assert!(matches!(
        login(&k, "ada@example.com", Some(&codes[2]), at).await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn confirming_identity_needs_the_password_and_with_2fa_a_fresh_code() {
    let k = kit();
    let plain = k.verified("bob@example.com").await;
    k.auth
        .confirm_identity(&plain, pw(PW), None, t0())
        .await
        .unwrap();
    assert!(matches!(
        k.auth
            .confirm_identity(&plain, pw("not the password"), None, t0())
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    let (id, app, codes) = enrolled(&k, "ada@example.com").await;
    let later = t0() + Duration::seconds(60);
    for missing in [None, Some(""), Some("  "), Some("000000")] {
        assert!(
            matches!(
                k.auth.confirm_identity(&id, pw(PW), missing, later).await,
                Err(AuthError::InvalidCredentials)
            ),
            "{missing:?}"
        );
    }
    let fresh = code(&app, later);
    assert!(matches!(
        k.auth
            .confirm_identity(&id, pw("wrong password!"), Some(&fresh), later)
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    k.auth
        .confirm_identity(&id, pw(PW), Some(&fresh), later)
        .await
        .unwrap();
    assert!(
        matches!(
            k.auth
                .confirm_identity(&id, pw(PW), Some(&fresh), later)
                .await,
            Err(AuthError::InvalidCredentials)
        ),
        "a code works once"
    );
    k.auth
        .confirm_identity(&id, pw(PW), Some(&codes[0]), later)
        .await
        .unwrap();
}

/// A key rotation seals the TOTP secret again, under the account's own binding: with only the
/// new key configured, the app's codes still log in, and the address and name still open.
#[tokio::test]
async fn a_key_rotation_keeps_the_second_factor_working_without_the_old_key() {
    let k = kit();
    let (id, app, _) = enrolled(&k, "ada@example.com").await;
    let (old, new) = ([4; 32], [9; 32]);
    let rotating = kit_on(k.store.clone(), CHEAP, keys_sealing_with(&[new, old]));
    let report = rotating.accounts.rotate().await.unwrap();
    assert_eq!((report.visited, report.resealed), (1, 1), "{report:?}");
    let after = kit_on(k.store.clone(), CHEAP, keys_sealing_with(&[new]));
    let at = t0() + Duration::minutes(10);
    login(&after, "ada@example.com", Some(&code(&app, at)), at)
        .await
        .unwrap();
    let account = after.auth.account(&id).await.unwrap().unwrap();
    assert_eq!(account.email.as_str(), "ada@example.com");
    // The old key alone opens nothing any more.
    let stale = kit_on(k.store.clone(), CHEAP, keys_sealing_with(&[old]));
    assert!(matches!(
        stale.auth.account(&id).await,
        Err(AuthError::Store(_))
    ));
}

/// An account read before a rotation and written after it (a login's password rehash, a spent
/// recovery code) does not put the TOTP secret back under the old key.
#[tokio::test]
async fn a_write_from_before_a_rotation_does_not_bring_the_old_key_back() {
    let k = kit();
    let (id, app, _) = enrolled(&k, "ada@example.com").await;
    let (old, new) = ([4; 32], [9; 32]);
    let rotating = kit_on(k.store.clone(), CHEAP, keys_sealing_with(&[new, old]));
    let stale = rotating.accounts.by_id(&id).await.unwrap().unwrap();
    let report = rotating.accounts.rotate().await.unwrap();
    assert_eq!(report.resealed, 1);
    rotating.accounts.update(&stale).await.unwrap();
    let after = kit_on(k.store.clone(), CHEAP, keys_sealing_with(&[new]));
    let at = t0() + Duration::minutes(10);
    login(&after, "ada@example.com", Some(&code(&app, at)), at)
        .await
        .unwrap();
}
