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
