//! The admin pages end to end: the 404 for everyone else, 2FA first, a lookup and each action
//! with its audit entry, sudo mode before changes to access, hostile input shown escaped.

use actix_web::http::StatusCode;
use phaze_auth::totp::TotpSecret;
use phaze_e2e::{spawn_portal, totp_key_on, Browser, TestPortal};
use phaze_portal::clock::Clock;
use time::Duration;

use crate::PW;

const BOSS: &str = "boss@example.com";

fn code(p: &TestPortal, app: &TotpSecret) -> String {
    app.code_at(p.clock.now()).unwrap()
}

/// Logs `email` in from a fresh browser with a TOTP code.
async fn log_in_2fa(p: &TestPortal, email: &str, app: &TotpSecret) -> Browser {
    // One code per time step: step past the one used last.
    p.advance(Duration::seconds(30));
    let b = p.browser();
    b.get("/login").await;
    let r = b
        .post_form(
            "/login",
            &[("email", email), ("password", PW), ("totp", &code(p, app))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The token changes at login: a page for the new one.
    b.get("/account").await;
    b
}

/// An admin with 2FA on, logged in just now.
pub(crate) async fn admin(p: &TestPortal) -> (Browser, TotpSecret) {
    let b = p.user(BOSS, PW).await;
    let app = totp_key_on(&b.get("/account/2fa").await.body);
    let r = b
        .post_form("/account/2fa/enable", &[("code", &code(p, &app))])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    p.state.auth.set_admin(BOSS, true).await.unwrap();
    (log_in_2fa(p, BOSS, &app).await, app)
}

pub(crate) async fn id_of(b: &Browser) -> String {
    let me = b.get("/api/v1/me").await;
    let v: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn everyone_but_an_admin_gets_the_unknown_page() {
    let p = spawn_portal().await;
    let unknown = p.browser().get("/no-such-page").await;
    let customer = p.user("ada@example.com", PW).await;
    let id = id_of(&customer).await;
    let anonymous = p.browser();
    anonymous.get("/").await;
    customer.get("/account").await;
    for b in [&anonymous, &customer] {
        for path in [
            "/admin/users",
            "/admin/audit",
            "/admin/users?email=ada%40example.com",
        ] {
            let r = b.get(path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.body.contains("Users"), unknown.body.contains("Users"));
        }
        let r = b.post_form(&format!("/admin/users/{id}/lock"), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    assert!(
        !customer.get("/account").await.body.contains("/admin/users"),
        "no admin link"
    );
    // An admin without 2FA is sent to turn it on.
    p.state
        .auth
        .set_admin("ada@example.com", true)
        .await
        .unwrap();
    let ada = p.user_login("ada@example.com", PW).await;
    let r = ada.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/account/2fa"));
    assert!(ada
        .get("/account/2fa")
        .await
        .body
        .contains("Admin pages need two-factor"));
    assert!(
        !p.state
            .auth
            .account(&id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .locked
    );
}

#[actix_web::test]
async fn an_admin_finds_locks_and_unlocks_an_account_and_the_audit_log_says_so() {
    let p = spawn_portal().await;
    let ada = p.user("ada@example.com", PW).await;
    ada.get("/account").await;
    let r = ada
        .post_form(
            "/account/profile",
            &[("display_name", "<img src=x onerror=alert(1)>")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let ada_id = id_of(&ada).await;
    let (boss, _) = admin(&p).await;
    let boss_id = id_of(&boss).await;

    let page = boss.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("href=\"/admin/users\" aria-current=\"page\""));
    let found = boss.get("/admin/users?email=+ADA%40example.COM+").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.body.contains(&ada_id));
    assert!(
        found.body.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "escaped: {}",
        found.body
    );
    assert!(!found.body.contains("<img src=x"));
    let none = boss.get("/admin/users?email=nobody%40example.com").await;
    assert!(none.body.contains("No account has that address."));
    let bad = boss.get("/admin/users?email=%3Cscript%3E").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("value=\"&#60;script&#62;\""),
        "{}",
        bad.body
    );

    // Lock: Ada's session ends at once, her right password is "suspended", a wrong one the usual.
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/lock"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some(&*format!("/admin/users?id={ada_id}")));
    let shown = boss.get(&format!("/admin/users?id={ada_id}")).await;
    assert!(shown.body.contains("Done.") && shown.body.contains(">Locked<"));
    assert_eq!(
        ada.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "logged out"
    );
    let again = p.browser();
    again.get("/login").await;
    let r = again
        .post_form("/login", &[("email", "ada@example.com"), ("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("suspended"));
    let r = again
        .post_form(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A session that outlived the lock (started meanwhile, say) stops at its next request too.
    let ada_uid: phaze_auth::UserId = ada_id.parse().unwrap();
    p.state.auth.set_locked(&ada_uid, false).await.unwrap();
    let late = p.user_login("ada@example.com", PW).await;
    p.state.auth.set_locked(&ada_uid, true).await.unwrap();
    let r = late.get("/account").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "a locked account's session is gone"
    );
    p.state.auth.set_locked(&ada_uid, false).await.unwrap();
    p.state.auth.set_locked(&ada_uid, true).await.unwrap();
    assert_eq!(late.get("/account").await.status, StatusCode::SEE_OTHER);

    // Unlock: she logs in again.
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/unlock"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    p.user_login("ada@example.com", PW).await;

    // An admin cannot lock themselves.
    let r = boss
        .post_form(&format!("/admin/users/{boss_id}/lock"), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("cannot lock your own account"));

    // The audit log: who, what, about whom, from where, newest first; filters.
    let log = boss.get(&format!("/admin/audit?user={ada_id}")).await;
    assert_eq!(log.status, StatusCode::OK);
    let lock_at = log.body.find(">admin.lock<").expect("the lock");
    let unlock_at = log.body.find(">admin.unlock<").expect("the unlock");
    assert!(unlock_at < lock_at, "newest first");
    assert!(log.body.contains(&boss_id) && log.body.contains("127.0.0.1"));
    assert!(
        !log.body.contains("ada@example.com"),
        "no addresses in the log"
    );
    let locks = boss.get("/admin/audit?action=admin.lock").await;
    assert!(locks.body.contains(">admin.lock<") && !locks.body.contains(">admin.unlock<"));
    assert_eq!(
        p.state.admin.audit_log().verify().await.unwrap(),
        phaze_audit::Verdict::Intact {
            entries: count(&p).await
        }
    );
}

async fn count(p: &TestPortal) -> u64 {
    let all = phaze_audit::AuditFilter::default();
    p.state
        .admin
        .audit_log()
        .page(&all, None, 10_000)
        .await
        .unwrap()
        .len() as u64
}

#[actix_web::test]
async fn changes_to_access_ask_for_the_password_again_after_the_sudo_window() {
    let p = spawn_portal().await;
    let ada = p.user("ada@example.com", PW).await;
    let ada_id = id_of(&ada).await;
    let (boss, app) = admin(&p).await;
    p.advance(Duration::minutes(11));
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/end-sessions"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to = r.location().unwrap().to_owned();
    assert!(to.starts_with("/account/confirm?next="), "{to}");
    assert_eq!(
        ada.get("/account").await.status,
        StatusCode::OK,
        "nothing happened"
    );
    // Confirming is a login; back on the page the action works.
    let confirm = boss.get(&to).await;
    assert!(
        confirm.body.contains("Confirm it&#x27;s you") || confirm.body.contains("Confirm it's you"),
        "{}",
        confirm.body
    );
    p.advance(Duration::seconds(30));
    let r = boss
        .post_form(
            "/login",
            &[
                ("email", BOSS),
                ("password", PW),
                ("totp", &code(&p, &app)),
                ("next", &format!("/admin/users?id={ada_id}")),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some(&*format!("/admin/users?id={ada_id}")));
    boss.get(&format!("/admin/users?id={ada_id}")).await;
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/end-sessions"), &[])
        .await;
    assert_eq!(r.location(), Some(&*format!("/admin/users?id={ada_id}")));
    assert_eq!(
        ada.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "logged out"
    );
}

#[actix_web::test]
async fn grant_and_revoke_from_the_page_end_the_accounts_sessions() {
    let p = spawn_portal().await;
    let ada = p.user("ada@example.com", PW).await;
    let ada_id = id_of(&ada).await;
    let (boss, _) = admin(&p).await;
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/grant"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(ada.get("/account").await.status, StatusCode::SEE_OTHER);
    let ada = p.user_login("ada@example.com", PW).await;
    assert!(
        ada.get("/account").await.body.contains("/admin/users"),
        "the admin link"
    );
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        !p.state
            .auth
            .account(&ada_id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    let r = boss
        .post_form(&format!("/admin/users/{ada_id}/resend-verification"), &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmed already"
    );
}

#[actix_web::test]
async fn hostile_paths_and_queries_are_refused_plainly() {
    let p = spawn_portal().await;
    let (boss, _) = admin(&p).await;
    let boss_id = id_of(&boss).await;
    for path in [
        "/admin/users/not-a-uuid/lock".to_owned(),
        format!("/admin/users/{boss_id}/delete"),
        format!("/admin/users/{boss_id}/LOCK"),
        format!("/admin/users/{}/lock", uuid_zero()),
        format!("/admin/users/{boss_id}/..%2Flock"),
    ] {
        let r = boss.post_form(&path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        boss.get("/admin/users?id=%3Cscript%3E").await.status,
        StatusCode::NOT_FOUND
    );
    let r = boss
        .get("/admin/audit?user=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            && !r.body.contains("<script>alert"),
        "{}",
        r.body
    );
    let r = boss
        .get("/admin/audit?action=admin.lock%22%3E%3Cb%3E")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.body.contains("\"><b>"));
    assert_eq!(
        boss.get("/admin/audit?page=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        boss.get("/admin/audit?page=999999").await.status,
        StatusCode::OK
    );
    // Without the CSRF token an action is refused and nothing is recorded.
    let before = count(&p).await;
    let r = boss
        .post_form(
            &format!("/admin/users/{boss_id}/end-sessions"),
            &[("csrf_token", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&p).await, before);
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}
