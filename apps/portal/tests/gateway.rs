//! Forward authentication through a real nginx: the portal (the debug binary), a toy service
//! that records the identity headers it is given, and nginx in front of both as the one gateway
//! (`auth_request` to `/auth/verify` for the service, a plain proxy for the portal's own pages,
//! so login and logout go through it too). nginx runs as a child process with a generated
//! configuration in a temporary directory, on free loopback ports.
//!
//! Needs the `nginx` program with its `auth_request` module (Debian's package `nginx`; `.ci/run`
//! installs it when it runs as root). It is checked once before any test runs: outside CI the
//! tests are reported as ignored, with the reason; under `CI=true` they fail
//! (`phaze_testkit::harness`). A test is an `async fn` listed in `main`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::http::StatusCode;
use phaze_e2e::{Browser, Resp};
use phaze_testkit::free_port;
use phaze_testkit::harness::{self, Need, Test};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery staple";

/// What the toy service was given: one entry per request that reached it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    /// Every `X-Phaze-User-Id` value, in order.
    user_ids: Vec<String>,
    roles: Vec<String>,
    two_factor: Vec<String>,
}

/// A toy HTTP service on a loopback port: records each request's identity headers and answers
/// `200` with `user=<ids>`. One request per connection (nginx speaks HTTP/1.0 to it).
struct Service {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve(stream, &record));
            }
        });
        Self { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, record: &Mutex<Vec<Seen>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut seen = Seen {
        method,
        path,
        user_ids: Vec::new(),
        roles: Vec::new(),
        two_factor: Vec::new(),
    };
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "x-phaze-user-id" => seen.user_ids.push(value),
            "x-phaze-user-role" => seen.roles.push(value),
            "x-phaze-2fa" => seen.two_factor.push(value),
            "content-length" => length = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let answer = format!("user={}", seen.user_ids.join(","));
    record.lock().unwrap().push(seen);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// A child process, ended on drop: asked to stop first (`SIGTERM`, so nginx's master takes its
/// workers along; a killed master would leave them serving), killed if it has not within 5 s.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The portal, the service and nginx in front of both. Dropped in field order: nginx first.
struct Gateway {
    nginx: Killed,
    _portal: Killed,
    service: Service,
    /// nginx: `http://127.0.0.1:PORT`.
    base: String,
    dir: tempfile::TempDir,
}

/// The gateway's configuration: what the README's "Forward authentication" section shows, with
/// a prefix, temporary paths and ports of its own.
fn nginx_conf(dir: &Path, listen: u16, portal: u16, service: u16) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/temp/body;
    proxy_temp_path {d}/temp/proxy;
    fastcgi_temp_path {d}/temp/fastcgi;
    uwsgi_temp_path {d}/temp/uwsgi;
    scgi_temp_path {d}/temp/scgi;

    upstream phaze_portal {{ server 127.0.0.1:{portal}; }}
    upstream service {{ server 127.0.0.1:{service}; }}

    server {{
        listen 127.0.0.1:{listen};

        # The protected service: every request is checked first.
        location /app/ {{
            auth_request /_phaze_auth;
            auth_request_set $phaze_user $upstream_http_x_phaze_user_id;
            auth_request_set $phaze_role $upstream_http_x_phaze_user_role;
            auth_request_set $phaze_2fa $upstream_http_x_phaze_2fa;
            # A check that rotated the session id carries the new id as a cookie; the browser
            # must get it, or it keeps an id that dies after the grace period.
            auth_request_set $phaze_cookie $upstream_http_set_cookie;
            add_header Set-Cookie $phaze_cookie;
            # Set, not appended: whatever the client sent under these names is replaced.
            proxy_set_header X-Phaze-User-Id $phaze_user;
            proxy_set_header X-Phaze-User-Role $phaze_role;
            proxy_set_header X-Phaze-2fa $phaze_2fa;
            proxy_pass http://service;
        }}

        location = /_phaze_auth {{
            internal;
            proxy_pass http://phaze_portal/auth/verify;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            # The edge proxy: the client's own X-Forwarded-For is replaced, not appended to (here
            # the client and the proxy share 127.0.0.1, so an appended list would be believed).
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}

        # The portal's own pages, login and logout included.
        location / {{
            proxy_pass http://phaze_portal;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"#
    )
}

impl Gateway {
    /// Starts all three; `env` adds portal settings (`PHAZE__…`).
    async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Workers of an nginx started as root run as `nobody` and must reach the temp paths.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("temp")).unwrap();
        let service = Service::start();
        let portal_port = free_port();
        let portal = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .env("PHAZE__HTTP__PORT", portal_port.to_string())
            .env("PHAZE__HTTP__TRUSTED_PROXIES", "127.0.0.1/32")
            .env("PHAZE__HTTP__WORKERS", "2")
            .env("PHAZE__STORE__DATA_DIR", dir.path().join("data"))
            .env("PHAZE__AUTH__ARGON2_M_KIB", "64")
            .env("PHAZE__AUTH__ARGON2_T", "1")
            .env("PHAZE__SESSION__IP_BINDING", "true")
            .env("PHAZE__LOG__FILTER", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("the portal binary starts");
        let portal = Killed(portal);
        phaze_e2e::wait_ready(&format!("http://127.0.0.1:{portal_port}")).await;

        let listen = free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            nginx_conf(dir.path(), listen, portal_port, service.port),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("nginx.stderr")).unwrap();
        let nginx = Command::new(nginx_program())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg("stderr")
            .arg("-g")
            .arg(format!(
                "daemon off; pid {}; error_log stderr;",
                dir.path().join("nginx.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nginx starts");
        let mut gateway = Self {
            nginx: Killed(nginx),
            _portal: portal,
            service,
            base: format!("http://127.0.0.1:{listen}"),
            dir,
        };
        gateway.wait_for_nginx(listen).await;
        gateway
    }

    async fn wait_for_nginx(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.nginx.0.try_wait() {
                panic!("nginx exited ({status}): {}", self.nginx_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                self.nginx_log()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn nginx_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.stderr")).unwrap_or_default()
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Registers, verifies and logs in through the gateway; the browser and the user's id.
    async fn user(&self, email: &str) -> (Browser, String) {
        let b = self.browser();
        b.get("/register").await;
        let r = b
            .post_form(
                "/register",
                &[("email", email), ("password", PW), ("password_confirm", PW)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "register: {}", r.body);
        let outbox = self.dir.path().join("data").join("outbox");
        let r = b.get(&phaze_e2e::verification_path(&outbox, email)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        b.login(email, PW).await;
        let me: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
        let id = me["id"].as_str().unwrap().to_owned();
        (b, id)
    }
}

fn assert_no_identity(r: &Resp, what: &str) {
    for name in ["x-phaze-user-id", "x-phaze-user-role", "x-phaze-2fa"] {
        assert!(
            r.header(name).is_none(),
            "{what}: {name} reached the client"
        );
    }
}

async fn anonymous_requests_never_reach_the_service() {
    let gw = Gateway::start(&[]).await;
    let b = gw.browser();
    let r = b.get("/app/hello").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_no_identity(&r, "anonymous");
    let r = b.head("/app/hello").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An identity the client writes itself is no identity.
    let r = b
        .get_with(
            "/app/hello",
            &[
                ("x-phaze-user-id", "someone"),
                ("x-phaze-user-role", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = b
        .post_raw("/app/submit", "text/plain", b"data".to_vec(), &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A session id that was never issued.
    b.set_cookie("phaze_session", &"A".repeat(43));
    assert_eq!(b.get("/app/hello").await.status, StatusCode::UNAUTHORIZED);
    assert!(
        gw.service.seen().is_empty(),
        "the service was called: {:?}",
        gw.service.seen()
    );
}

async fn a_logged_in_request_reaches_the_service_with_its_user_id_only() {
    let gw = Gateway::start(&[]).await;
    let (b, id) = gw.user("gateway@example.com").await;
    let r = b.get("/app/hello").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, format!("user={id}"));
    assert_no_identity(&r, "the service's answer");

    // The client's own identity headers are replaced, never passed on beside the real ones.
    let r = b
        .get_with(
            "/app/forged",
            &[
                ("x-phaze-user-id", "00000000-0000-4000-8000-000000000000"),
                ("x-phaze-user-role", "admin"),
                ("x-phaze-2fa", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // An unsafe method to the service is checked as a GET: no CSRF token is needed for it.
    let r = b
        .post_raw("/app/submit", "text/plain", b"data".to_vec(), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The session is bound to the client's network; an X-Forwarded-For the client writes is
    // replaced at the edge, so it cannot move the client (which would end the session).
    let r = b
        .get_with("/app/elsewhere", &[("x-forwarded-for", "203.0.113.9")])
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let seen = gw.service.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for s in &seen {
        assert_eq!(s.user_ids, std::slice::from_ref(&id), "{s:?}");
        assert_eq!(s.roles, ["customer"], "{s:?}");
        assert_eq!(s.two_factor, ["off"], "{s:?}");
    }
    assert_eq!(seen[1].path, "/app/forged");
    assert_eq!(
        (seen[2].method.as_str(), seen[2].path.as_str()),
        ("POST", "/app/submit")
    );
}

async fn logout_through_the_gateway_cuts_access_at_once() {
    let gw = Gateway::start(&[]).await;
    let (b, id) = gw.user("leaving@example.com").await;
    let cookie = b.cookie("phaze_session").unwrap();
    assert_eq!(b.get("/app/before").await.body, format!("user={id}"));
    b.get("/account").await;
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let replay = gw.browser();
    replay.set_cookie("phaze_session", &cookie);
    assert_eq!(
        replay.get("/app/after").await.status,
        StatusCode::UNAUTHORIZED
    );
    let seen = gw.service.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
}

async fn a_rotated_id_reaches_the_browser_and_keeps_working() {
    // Rotation after 3 s with a 1 s grace, so the test can wait for both on the real clock.
    let gw = Gateway::start(&[
        ("PHAZE__SESSION__ROTATE_SECS", "3"),
        ("PHAZE__SESSION__GRACE_SECS", "1"),
    ])
    .await;
    let (b, id) = gw.user("rotating@example.com").await;
    let old = b.cookie("phaze_session").unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(3300)).await;
    let r = b.get("/app/rotating").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let set = r
        .set_cookie("phaze_session")
        .expect("nginx passed the check's Set-Cookie on");
    assert!(set.contains("HttpOnly"), "{set}");
    let new = b.cookie("phaze_session").unwrap();
    assert_ne!(new, old, "the id rotated");
    // Past the old id's grace: the browser's new id works, the old one does not.
    actix_web::rt::time::sleep(Duration::from_millis(1300)).await;
    let r = b.get("/app/after-rotation").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, format!("user={id}"));
    let stale = gw.browser();
    stale.set_cookie("phaze_session", &old);
    assert_eq!(
        stale.get("/app/stale").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// `nginx` from `PATH`, or Debian's `/usr/sbin/nginx`, which a normal user's `PATH` may lack.
fn nginx_program() -> &'static str {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("nginx").is_file()));
    if !on_path && Path::new("/usr/sbin/nginx").is_file() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

fn actix<F: std::future::Future<Output = ()> + 'static>(name: &str, test: fn() -> F) -> Test {
    Test::new(name, move || actix_web::rt::System::new().block_on(test()))
}

fn main() -> ExitCode {
    let nginx = Need::check("nginx with auth_request (Debian package nginx)", || {
        let out = Command::new(nginx_program())
            .arg("-V")
            .output()
            .map_err(|e| format!("nginx: {e}"))?;
        // `nginx -V` prints its build configuration on stderr.
        let build = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("`nginx -V` exited with {}", out.status));
        }
        if !build.contains("http_auth_request_module") {
            return Err("this nginx was built without http_auth_request_module".into());
        }
        Ok(())
    });
    harness::run(nginx.gate(phaze_testkit::tests!(
        |name, test| actix(name, test);
        {
            anonymous_requests_never_reach_the_service,
            a_logged_in_request_reaches_the_service_with_its_user_id_only,
            logout_through_the_gateway_cuts_access_at_once,
            a_rotated_id_reaches_the_browser_and_keeps_working,
        }
    )))
}
