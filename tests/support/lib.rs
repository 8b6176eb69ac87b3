//! Test support: start the real portal on a random port and drive it like a browser would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use phaze_portal::clock::ManualClock;
use phaze_portal::settings::StoreKind;
use phaze_portal::{Application, Settings};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;
use time::OffsetDateTime;

pub mod stripe;

/// A running portal.
pub struct TestPortal {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The clock the portal reads.
    pub clock: ManualClock,
    /// Outbox and data directory live here.
    pub dir: TempDir,
    /// The outbox.
    pub outbox: PathBuf,
    /// The portal's wiring (its event sinks, stores), for what no route reaches.
    pub state: actix_web::web::Data<phaze_portal::state::AppState>,
}

/// 2026-01-01T00:00:00Z.
pub fn start_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// The portal on memory stores with a manual clock.
pub async fn spawn_portal() -> TestPortal {
    spawn_portal_with(|_| {}).await
}

/// The portal with settings adjusted by `tweak` (on top of [`Settings::for_tests`]).
pub async fn spawn_portal_with(tweak: impl FnOnce(&mut Settings)) -> TestPortal {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests();
    settings.mail.outbox_dir = dir.path().join("outbox");
    settings.store.data_dir = dir.path().join("data");
    settings.http.workers = 2;
    tweak(&mut settings);
    spawn_on(settings, dir).await
}

/// The portal on the fs store in `data_dir` (for several portals sharing one directory).
pub async fn spawn_fs_portal(data_dir: &Path) -> TestPortal {
    spawn_fs_portal_with(data_dir, |_| {}).await
}

/// [`spawn_fs_portal`] with settings adjusted by `tweak`.
pub async fn spawn_fs_portal_with(
    data_dir: &Path,
    tweak: impl FnOnce(&mut Settings),
) -> TestPortal {
    let data_dir = data_dir.to_owned();
    spawn_portal_with(move |s| {
        s.store.kind = StoreKind::Fs;
        s.store.data_dir = data_dir.clone();
        s.mail.outbox_dir = data_dir.join("outbox");
        tweak(s);
    })
    .await
}

async fn spawn_on(settings: Settings, dir: TempDir) -> TestPortal {
    let clock = ManualClock::new(start_time());
    let outbox = settings.outbox_dir();
    let app = Application::build_with_clock(settings, std::sync::Arc::new(clock.clone()))
        .await
        .expect("portal starts");
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    actix_web::rt::spawn(app.run());
    TestPortal {
        base,
        clock,
        dir,
        outbox,
        state,
    }
}

impl TestPortal {
    /// A new browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Moves the portal's clock forward.
    pub fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }

    /// Every message in the outbox, as raw RFC 5322 text with soft line breaks undone.
    pub fn mails(&self) -> Vec<String> {
        outbox_mails(&self.outbox)
    }

    /// The newest mail to `to` that contains `needle`, if any.
    pub fn mail_to(&self, to: &str, needle: &str) -> Option<String> {
        mail_to(&self.outbox, to, needle)
    }

    /// Every message in the outbox once there are at least `count` (see [`wait_for_mails`]).
    pub fn wait_for_mails(&self, count: usize) -> Vec<String> {
        wait_for_mails(&self.outbox, count)
    }

    /// The path of the newest verification link mailed to `to`.
    pub fn verification_path(&self, to: &str) -> String {
        verification_path(&self.outbox, to)
    }

    /// Logs an existing account in from a new browser; asserts success.
    pub async fn user_login(&self, email: &str, password: &str) -> Browser {
        let b = self.browser();
        b.login(email, password).await;
        // The CSRF token changes at login: a page for the new one.
        b.get("/account").await;
        b
    }

    /// Registers and verifies `email` with `password`; returns a browser that is logged in.
    pub async fn user(&self, email: &str, password: &str) -> Browser {
        let b = self.browser();
        b.get("/register").await;
        let r = b
            .post_form(
                "/register",
                &[
                    ("email", email),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "register {email}: {}", r.body);
        let r = b.get(&self.verification_path(email)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        b.login(email, password).await;
        b
    }
}

/// Every message in an outbox directory, oldest first, with soft line breaks undone.
pub fn outbox_mails(outbox: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(outbox) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files
        .iter()
        .map(|p| decode_qp(&std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// How long a test waits for mail: the portal sends registration mail after answering.
const MAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The newest mail in `outbox` to `to` that contains `needle`, waiting for it a few seconds (the
/// portal finishes registrations after answering); `None` if none comes.
pub fn mail_to(outbox: &Path, to: &str, needle: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + MAIL_WAIT;
    loop {
        let found = outbox_mails(outbox).into_iter().rev().find(|m| {
            m.lines()
                .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to))
                && m.contains(needle)
        });
        if found.is_some() || std::time::Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every message in `outbox` once there are at least `count`, waiting for them a few seconds;
/// panics if they do not come.
pub fn wait_for_mails(outbox: &Path, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + MAIL_WAIT;
    loop {
        let mails = outbox_mails(outbox);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} mails expected, {} came",
            mails.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The path of the newest verification link in `outbox` mailed to `to`.
pub fn verification_path(outbox: &Path, to: &str) -> String {
    let mail = mail_to(outbox, to, "/verify/").expect("a verification mail");
    link_in(&mail).expect("a verification link")
}

/// The verification link (`/verify/<token>`) in a mail, if it has one.
pub fn link_in(mail: &str) -> Option<String> {
    let start = mail.find("/verify/")? + 8;
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("/verify/{token}"))
}

/// Waits until the portal at `base` (a real process) answers `/readyz` with 2xx, for up to 20 s.
pub async fn wait_ready(base: &str) {
    let client = awc::Client::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
            if res.status().is_success() {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base} did not become ready"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn decode_qp(raw: &str) -> String {
    if !raw.to_ascii_lowercase().contains("quoted-printable") {
        return raw.to_owned();
    }
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// A response, read whole.
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy).
    pub body: String,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` header for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

/// A tiny browser: a cookie jar, the last CSRF token seen, no redirect following.
pub struct Browser {
    client: awc::Client,
    base: String,
    /// Cookies, by name.
    pub jar: RefCell<BTreeMap<String, String>>,
    /// The CSRF token of the last page that had one.
    pub csrf: RefCell<String>,
    /// Extra headers sent with every request (e.g. `X-Forwarded-Proto`).
    pub extra: RefCell<Vec<(String, String)>>,
}

impl Browser {
    /// A browser for the portal at `base`.
    pub fn new(base: &str) -> Self {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(Duration::from_secs(60))
            .finish();
        Self {
            client,
            base: base.to_owned(),
            jar: RefCell::default(),
            csrf: RefCell::default(),
            extra: RefCell::default(),
        }
    }

    /// The value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.borrow().get(name).cloned()
    }

    /// Sets a cookie by hand (an attacker planting one).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends `req`, updates the jar and the CSRF token, reads the whole body.
    pub async fn send(&self, req: awc::ClientRequest, body: Option<(&str, Vec<u8>)>) -> Resp {
        let mut req = req;
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            req = req.insert_header(("cookie", cookies));
        }
        for (k, v) in self.extra.borrow().iter() {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        let mut res = match body {
            Some((ct, bytes)) => {
                req.insert_header(("content-type", ct))
                    .send_body(bytes)
                    .await
            }
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = res.body().limit(4 << 20).await.expect("body read");
        let resp = Resp {
            status: res.status(),
            headers: res.headers().clone(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        for c in resp.set_cookies() {
            let first = c.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            if c.contains("Max-Age=0") || value.is_empty() {
                self.jar.borrow_mut().remove(name);
            } else {
                self.jar
                    .borrow_mut()
                    .insert(name.to_owned(), value.to_owned());
            }
        }
        if let Some(token) = meta_csrf(&resp.body) {
            *self.csrf.borrow_mut() = token;
        }
        resp
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(format!("{}{path}", self.base)), None)
            .await
    }

    /// `GET path` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        self.send(req, None).await
    }

    /// `method path` with extra headers and no body (a gateway's check of a client's request).
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        self.send(req, None).await
    }

    /// `HEAD path`.
    pub async fn head(&self, path: &str) -> Resp {
        let req = self.client.head(format!("{}{path}", self.base));
        self.send(req, None).await
    }

    /// `POST path` as a form, adding the current CSRF token unless `fields` has one.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.post_form_with(path, fields, &[]).await
    }

    /// [`Browser::post_form`] with extra headers.
    pub async fn post_form_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let csrf = self.csrf.borrow().clone();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if !fields.iter().any(|(k, _)| *k == "csrf_token") {
            all.push(("csrf_token", &csrf));
        }
        let body = serde_urlencoded_pairs(&all);
        self.post_raw(
            path,
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            headers,
        )
        .await
    }

    /// `POST path` with any body and headers, exactly as given.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        self.send(req, Some((content_type, body))).await
    }

    /// `POST path` with a JSON body and the CSRF token header.
    pub async fn post_json(&self, path: &str, json: &str) -> Resp {
        let csrf = self.csrf.borrow().clone();
        self.post_raw(
            path,
            "application/json",
            json.as_bytes().to_vec(),
            &[("x-csrf-token", &csrf)],
        )
        .await
    }

    /// Loads the login page and logs in; asserts success.
    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.get("/login").await;
        let r = self
            .post_form("/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "login {email}: {}", r.body);
        r
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token of `<meta name="csrf-token" content="…">`.
pub fn meta_csrf(body: &str) -> Option<String> {
    let i = body.find("name=\"csrf-token\"")?;
    let rest = &body[i..];
    let c = rest.find("content=\"")? + 9;
    let end = rest[c..].find('"')?;
    let token = &rest[c..c + end];
    (!token.is_empty()).then(|| token.to_owned())
}

/// The CSRF cookie and token of a fresh anonymous visit to `path`.
pub async fn anonymous_token(base: &str, path: &str) -> (String, String) {
    let client = awc::Client::default();
    let mut page = client.get(format!("{base}{path}")).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("phaze_csrf="))
        .unwrap();
    let body = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    let start = body.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    (
        cookie,
        body[start..start + body[start..].find('"').unwrap()].to_owned(),
    )
}

/// Asks for a reset of `email` (an account) through `bases[1]`, reads the link from `outbox`, and
/// posts ten new passwords with it at once, spread over `bases`: exactly one wins (303), the
/// others find the link spent (400), and the winner's password is the account's on every base.
pub async fn one_reset_link_used_at_once_through(bases: &[&str], outbox: &Path, email: &str) {
    const PW: &str = "correct horse battery staple";
    let (cookie, token) = anonymous_token(bases[1 % bases.len()], "/password/forgot").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let asked = client
        .post(format!("{}/password/forgot", bases[1 % bases.len()]))
        .insert_header(("cookie", cookie))
        .send_form(&[("email", email), ("csrf_token", token.as_str())])
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 200);
    let mail = mail_to(outbox, email, "/password/reset/").expect("a reset mail");
    let start = mail.find("/password/reset/").unwrap();
    let link = mail[start..].split_whitespace().next().unwrap().to_owned();

    // One anonymous visit serves every process: they share the CSRF key.
    let (cookie, token) = anonymous_token(bases[2 % bases.len()], &link).await;
    let statuses = futures_util::future::join_all((0..10).map(|i| {
        let base = bases[i % bases.len()];
        let password = format!("{PW} number {i}");
        let req = client
            .post(format!("{base}{link}"))
            .insert_header(("cookie", cookie.clone()));
        let token = token.clone();
        async move {
            let form = [
                ("password", password.as_str()),
                ("password_confirm", password.as_str()),
                ("csrf_token", token.as_str()),
            ];
            req.send_form(&form).await.unwrap().status().as_u16()
        }
    }))
    .await;
    let won: Vec<usize> = (0..10).filter(|i| statuses[*i] == 303).collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 400),
        "{statuses:?}"
    );
    for base in bases {
        Browser::new(base)
            .login(email, &format!("{PW} number {}", won[0]))
            .await;
    }
}

/// The TOTP key the enrolment page (`GET /account/2fa`) shows as text, as an app would read it.
pub fn totp_key_on(page: &str) -> phaze_auth::totp::TotpSecret {
    let start = page.find("secret-key\">").expect("the key as text") + "secret-key\">".len();
    let end = start + page[start..].find('<').unwrap();
    phaze_auth::totp::TotpSecret::from_base32(&page[start..end]).expect("a base32 key")
}

/// The recovery codes a page lists (after `POST /account/2fa/enable`).
pub fn recovery_codes_on(page: &str) -> Vec<String> {
    let list = &page[page.find("recovery-codes").expect("a code list")..];
    let list = &list[..list.find("</ul>").unwrap()];
    list.split("<li>")
        .skip(1)
        .map(|c| c[..c.find("</li>").unwrap()].trim().to_owned())
        .collect()
}
