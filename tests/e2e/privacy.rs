//! The data subject's export end to end: after a full lifecycle, `GET /account/export` holds
//! every item stored about the account, as a JSON attachment, and no secret.

use actix_web::http::StatusCode;
use phaze_e2e::stripe::{sign, WEBHOOK_SECRET};
use phaze_portal::clock::Clock;
use secrecy::SecretString;

use crate::admin::{admin, id_of};
use crate::PW;

#[actix_web::test]
async fn the_export_holds_the_account_sessions_devices_subscription_and_audit_entries() {
    let p = phaze_e2e::spawn_portal_with(|s| {
        s.payments.webhook_secrets = vec![SecretString::from(WEBHOOK_SECRET)];
    })
    .await;
    let ada = p.user("ada@example.com", PW).await;
    ada.get("/account").await;
    let r = ada
        .post_form(
            "/account/profile",
            &[("display_name", "Ada \"<b>\" Lovelace")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id = id_of(&ada).await;
    let _phone = p.user_login("ada@example.com", PW).await;
    ada.get("/account/devices").await;
    let r = ada
        .post_form("/account/devices", &[("name", "laptop")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let devices = ada.get("/account/devices").await.body;
    let device_id = devices
        .split("/account/devices/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let config = ada
        .get(&format!("/account/devices/{device_id}/config"))
        .await
        .body;
    let private_key = config
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap()
        .to_owned();
    // A completed checkout links her to a Stripe customer and subscription.
    let t = p.clock.now().unix_timestamp();
    let body = format!(
        r#"{{"id":"evt_1","object":"event","type":"checkout.session.completed","created":{t},
        "data":{{"object":{{"id":"cs_1","client_reference_id":"{id}","customer":"cus_ada",
        "subscription":"sub_ada","metadata":{{}}}}}}}}"#
    );
    let r = p
        .browser()
        .post_raw(
            "/webhooks/stripe",
            "application/json",
            body.as_bytes().to_vec(),
            &[("stripe-signature", &sign(&body, t))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // An admin looks her up: an audit entry about her.
    let (boss, _) = admin(&p).await;
    let boss_id = id_of(&boss).await;
    boss.get(&format!("/admin/users?id={id}")).await;

    let r = ada.get("/account/export").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"phaze-export-2026-01-01.json\""),
        "{disposition}"
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["format"], "phaze-export/1");
    let account = &v["account"];
    assert_eq!(account["id"], id.as_str());
    assert_eq!(account["email"], "ada@example.com");
    assert_eq!(account["display_name"], "Ada \"<b>\" Lovelace");
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["two_factor"], false);
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2, "both browsers");
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["id"], device_id.as_str());
    assert_eq!(devices[0]["name"], "laptop");
    assert!(devices[0]["address_v4"].as_str().unwrap().contains('.'));
    assert_eq!(v["subscription"]["customer"], "cus_ada");
    assert_eq!(v["subscription"]["subscription"], "sub_ada");
    assert_eq!(v["subscription"]["status"], "active");
    let audit = v["audit"].as_array().unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "admin.view_user"
            && e["subject"] == id.as_str()
            && e["actor"] == boss_id.as_str()),
        "{audit:?}"
    );
    // The mail the outbox still holds for her, by subject; no body (links are in bodies).
    let mail = v["mail"].as_array().unwrap();
    assert!(
        mail.iter().any(
            |m| m["state"] == "waiting" && m["subject"].as_str().is_some_and(|s| !s.is_empty())
        ),
        "{mail:?}"
    );
    assert!(!r.body.contains("/verify/"), "no link from a message body");
    // No secret: no hash, no sealed secret, no device private key, no session id.
    for secret in ["$argon2", "password_hash", "sealed", private_key.as_str()] {
        assert!(!r.body.contains(secret), "{secret} in the export");
    }
    let cookie = ada.cookie("phaze_session").unwrap();
    assert!(!r.body.contains(&cookie));

    // Anonymous: the login page, as for every account page.
    let r = p.browser().get("/account/export").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with("/login?next="));
}

/// Every file under `dir`, outbox included, as text.
fn data_files(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            data_files(&path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

/// While accounts live, no file of the data directory but the outbox (mail on its way to the
/// relay) holds an address or a display name: not the account records, not their index, not a
/// pending registration's link, not a session. The portal still finds and shows them.
#[actix_web::test]
async fn addresses_and_names_are_sealed_in_every_file_of_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let p = phaze_e2e::spawn_fs_portal(data.path()).await;
    let ada = p.user("zyx.ada@example.com", PW).await;
    ada.get("/account").await;
    let r = ada
        .post_form(
            "/account/profile",
            &[("display_name", "Zyxwv <b>Qutsr</b>")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // A registration left pending: its link is a token holding the address.
    let pending = p.browser();
    pending.get("/register").await;
    let r = pending
        .post_form(
            "/register",
            &[
                ("email", "qwv.pending@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(p.mail_to("qwv.pending@example.com", "/verify/").is_some());

    let mut files = Vec::new();
    data_files(data.path(), &mut files);
    let outbox = data.path().join("outbox");
    let mut scanned = 0;
    for (path, text) in files.iter().filter(|(path, _)| !path.starts_with(&outbox)) {
        scanned += 1;
        for trace in ["zyx.ada", "qwv.pending", "Zyxwv", "Qutsr"] {
            assert!(!text.contains(trace), "{trace} in {}", path.display());
        }
    }
    assert!(scanned > 5, "the scan saw the stores' files");
    let page = ada.get("/account").await;
    assert!(page.body.contains("zyx.ada@example.com"), "{}", page.body);
    assert!(
        page.body.contains("Zyxwv &#60;b&#62;Qutsr&#60;/b&#62;"),
        "{}",
        page.body
    );
    p.user_login("zyx.ada@example.com", PW).await;
    let r = pending
        .get(&p.verification_path("qwv.pending@example.com"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the pending link still works"
    );
}

#[actix_web::test]
async fn deletion_needs_the_password_then_erases_the_account_from_every_file_and_frees_the_address()
{
    let data = tempfile::tempdir().unwrap();
    let p = phaze_e2e::spawn_fs_portal(data.path()).await;
    let ada = p.user("ada@example.com", PW).await;
    ada.get("/account").await;
    ada.post_form("/account/profile", &[("display_name", "Zyxwv Qutsr")])
        .await;
    let id = id_of(&ada).await;
    ada.get("/account/devices").await;
    let r = ada
        .post_form("/account/devices", &[("name", "laptop")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let other = p.user_login("ada@example.com", PW).await;

    // A wrong password: 422, nothing deleted.
    let page = ada.get("/account").await;
    assert!(page.body.contains("action=\"/account/delete\""));
    let r = ada
        .post_form("/account/delete", &[("password", "not my password!")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Nothing was deleted"));
    assert_eq!(other.get("/account").await.status, StatusCode::OK);

    let r = ada.post_form("/account/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/"));
    assert_eq!(
        ada.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "logged out"
    );
    assert_eq!(
        other.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "everywhere"
    );
    let again = p.browser();
    again.get("/login").await;
    let r = again
        .post_form("/login", &[("email", "ada@example.com"), ("password", PW)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "no such account any more"
    );

    // No file of the store, the outbox included, holds her address, her name or her device.
    let mut files = Vec::new();
    data_files(data.path(), &mut files);
    for (path, text) in &files {
        for trace in ["ada@example.com", "Zyxwv Qutsr", "laptop"] {
            assert!(!text.contains(trace), "{trace} in {}", path.display());
        }
    }
    // The audit log keeps the request and its closing, by id.
    let log = p.state.admin.audit_log();
    let all = log
        .page(&phaze_audit::AuditFilter::default(), None, 100)
        .await
        .unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"account.delete_requested") && actions.contains(&"account.deleted"));
    assert!(all
        .iter()
        .all(|e| e.subject.map(|s| s.to_string()) == Some(id.clone())));
    assert_eq!(
        p.state.privacy.resume_pending(p.clock.now()).await.unwrap(),
        0,
        "a finished deletion is not open"
    );
    // The address is free again.
    p.user("ada@example.com", PW).await;
}

#[actix_web::test]
async fn a_deletion_a_store_failure_interrupted_is_finished_after_recovery() {
    let data = tempfile::tempdir().unwrap();
    let p = phaze_e2e::spawn_fs_portal(data.path()).await;
    let ada = p.user("ada@example.com", PW).await;
    let id: phaze_auth::UserId = id_of(&ada).await.parse().unwrap();
    ada.get("/account").await;
    // The subscriptions directory becomes a file: that store fails (even for root).
    let subs = data.path().join("payments/subscriptions");
    std::fs::remove_dir_all(&subs).unwrap();
    std::fs::write(&subs, b"in the way").unwrap();
    let r = ada.post_form("/account/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // Half done, but locked: the right password gets no session.
    let again = p.browser();
    again.get("/login").await;
    let r = again
        .post_form("/login", &[("email", "ada@example.com"), ("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(p.state.auth.account(&id).await.unwrap().is_some());
    // Still failing: the periodic task leaves it open.
    let now = p.clock.now();
    assert!(p.state.privacy.resume_pending(now).await.is_err());
    // The store recovers; the next run finishes it.
    std::fs::remove_file(&subs).unwrap();
    std::fs::create_dir(&subs).unwrap();
    assert_eq!(p.state.privacy.resume_pending(now).await.unwrap(), 1);
    assert!(p.state.auth.account(&id).await.unwrap().is_none());
    assert_eq!(
        p.state.privacy.resume_pending(now).await.unwrap(),
        0,
        "nothing left open"
    );
}

/// Guessing the password through the deletion form is limited like password changes: five
/// tries an account, then 429, and the account is still there.
#[actix_web::test]
async fn password_guesses_through_the_deletion_form_are_limited() {
    // The production budget (the test settings lift it).
    let p = phaze_e2e::spawn_portal_with(|s| s.ratelimit.password_change_per_account = 5).await;
    let ada = p.user("ada@example.com", PW).await;
    ada.get("/account").await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let guess = format!("guess number {i} wrong");
        let r = ada
            .post_form("/account/delete", &[("password", &guess)])
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [422, 422, 422, 422, 422, 429]);
    let r = ada.post_form("/account/delete", &[("password", PW)]).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right one, until the window passes"
    );
    assert_eq!(ada.get("/account").await.status, StatusCode::OK);
}
