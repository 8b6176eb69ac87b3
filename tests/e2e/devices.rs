//! VPN devices end to end: add, download and parse the configuration, delete, the address free
//! again; another account's device is a 404; hostile names give safe file names and escaped pages.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal, Browser};

use crate::PW;

/// The ids in the page's download links, in order.
fn ids(page: &str) -> Vec<String> {
    page.split("href=\"/account/devices/")
        .skip(1)
        .filter_map(|s| s.split_once("/config\"").map(|(id, _)| id.to_owned()))
        .filter(|id| id.len() == 36)
        .collect()
}

fn field<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
}

async fn add(b: &Browser, name: &str) -> phaze_e2e::Resp {
    b.get("/account/devices").await;
    b.post_form("/account/devices", &[("name", name)]).await
}

#[actix_web::test]
async fn add_download_delete_and_the_address_is_free_again() {
    let p = spawn_portal().await;
    let b = p.user("ada@example.com", PW).await;
    let r = add(&b, "Laptop").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get("/account/devices").await;
    assert!(page.body.contains("Your device was added"));
    let id = ids(&page.body).pop().expect("a device");

    let r = b.get(&format!("/account/devices/{id}/config")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"Laptop.conf\"; filename*=UTF-8''Laptop.conf")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let config = &r.body;
    assert!(config.starts_with("[Interface]\n"));
    assert_eq!(field(config, "PrivateKey").map(str::len), Some(44));
    assert_eq!(field(config, "Address"), Some("10.66.0.2/32, fd66::2/128"));
    assert_eq!(field(config, "DNS"), Some("10.66.0.1"));
    assert_eq!(
        field(config, "PublicKey"),
        Some("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")
    );
    assert_eq!(field(config, "Endpoint"), Some("vpn.example.com:51820"));
    assert_eq!(field(config, "AllowedIPs"), Some("0.0.0.0/0, ::/0"));
    assert_eq!(field(config, "PersistentKeepalive"), Some("25"));
    assert!(
        !page.body.contains(field(config, "PrivateKey").unwrap()),
        "the page never shows it"
    );

    // The same configuration as a QR code for phones: inline SVG, no-store, the owner's only.
    let qr = b.get(&format!("/account/devices/{id}/qr")).await;
    assert_eq!(qr.status, StatusCode::OK);
    assert!(qr.body.contains("<svg") && !qr.body.contains("PrivateKey"));
    assert_eq!(qr.header("cache-control"), Some("no-store"));

    let r = b
        .post_form(&format!("/account/devices/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.get(&format!("/account/devices/{id}/config")).await.status,
        StatusCode::NOT_FOUND
    );
    add(&b, "Phone").await;
    let id = ids(&b.get("/account/devices").await.body).pop().unwrap();
    let config = b.get(&format!("/account/devices/{id}/config")).await.body;
    assert_eq!(
        field(&config, "Address"),
        Some("10.66.0.2/32, fd66::2/128"),
        "the address was freed"
    );
}

#[actix_web::test]
async fn another_accounts_device_is_the_same_404_as_none() {
    let p = spawn_portal().await;
    let ada = p.user("ada@example.com", PW).await;
    add(&ada, "Laptop").await;
    let id = ids(&ada.get("/account/devices").await.body).pop().unwrap();
    let eve = p.user("eve@example.com", PW).await;
    for path in [
        format!("/account/devices/{id}/config"),
        format!("/account/devices/{id}/qr"),
        "/account/devices/00000000-0000-0000-0000-000000000000/config".to_owned(),
        "/account/devices/..%2F..%2Fetc%2Fpasswd/config".to_owned(),
    ] {
        assert_eq!(eve.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    eve.get("/account/devices").await;
    let r = eve
        .post_form(&format!("/account/devices/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ada.get(&format!("/account/devices/{id}/config"))
            .await
            .status,
        StatusCode::OK
    );
    assert!(!eve.get("/account/devices").await.body.contains(&id));
}

#[actix_web::test]
async fn hostile_names_give_safe_file_names_and_escaped_pages() {
    let p = spawn_portal().await;
    let b = p.user("ada@example.com", PW).await;
    for (name, file) in [
        ("../../etc/passwd", "etcpasswd.conf"),
        ("CON.txt", "_CON.txt.conf"),
        ("quote\"me", "quote_me.conf"),
        ("<script>alert(1)</script>", "_script_alert(1)_script_.conf"),
    ] {
        let r = add(&b, name).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}: {}", r.body);
        let page = b.get("/account/devices").await;
        assert!(!page.body.contains("<script>alert(1)"), "escaped");
        let id = ids(&page.body).pop().unwrap();
        let r = b.get(&format!("/account/devices/{id}/config")).await;
        let disposition = r.header("content-disposition").unwrap().to_owned();
        assert!(
            disposition.contains(&format!("filename=\"{file}\"")),
            "{name}: {disposition}"
        );
        b.post_form(&format!("/account/devices/{id}/delete"), &[])
            .await;
    }
    // A name with a line break or a bidi override is refused with a clear 422, nothing added.
    for bad in ["a\r\nb", "evil\u{202E}gnp", "", &"x".repeat(65)] {
        let r = add(&b, bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(r.body.contains("Device name:"), "{bad:?}");
    }
    assert!(ids(&b.get("/account/devices").await.body).is_empty());
    // 64 emoji: kept as typed, and a non-empty file name within the byte limit.
    let emoji = "😀".repeat(64);
    add(&b, &emoji).await;
    let id = ids(&b.get("/account/devices").await.body).pop().unwrap();
    let r = b.get(&format!("/account/devices/{id}/config")).await;
    let disposition = r.header("content-disposition").unwrap().to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''%F0%9F%98%80"),
        "{disposition}"
    );
}

#[actix_web::test]
async fn the_limit_per_account_is_a_clear_422() {
    let p = phaze_e2e::spawn_portal_with(|s| s.devices.limit_per_account = 2).await;
    let b = p.user("ada@example.com", PW).await;
    for name in ["one", "two"] {
        assert_eq!(add(&b, name).await.status, StatusCode::SEE_OTHER);
    }
    let r = add(&b, "three").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("the most devices an account can have (2)"),
        "{}",
        r.body
    );
    assert_eq!(ids(&b.get("/account/devices").await.body).len(), 2);
}
