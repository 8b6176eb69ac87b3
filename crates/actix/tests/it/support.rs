//! Fixtures: a Phaze session store of each kind behind a [`PhazeSessionStore`] on a manual clock,
//! a small app under actix-session's own `SessionMiddleware`, and the cookie work a browser and an
//! attacker would do (actix-session signs or encrypts its cookie with its own key, so a test that
//! wants a chosen value to reach the store seals it with that key).

use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::{Session, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, CookieJar, Key};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web, App, HttpResponse};
use phaze_actix::PhazeSessionStore;
use phaze_sessions::{Sealer, SealingKey, SessionId, SessionKey, SessionStore, StoredSession};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// actix-session's default cookie name.
pub(crate) const COOKIE: &str = "id";

/// A clock that moves only when told to.
#[derive(Clone)]
pub(crate) struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    pub(crate) fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

/// A Phaze session store, the clock its [`PhazeSessionStore`]s read, the actix-session cookie
/// key, and what must live as long as the store (a temporary directory, Redis keys to delete).
pub(crate) struct Fixture {
    pub(crate) raw: Arc<dyn SessionStore>,
    pub(crate) clock: ManualClock,
    pub(crate) key: Key,
    pub(crate) dir: Option<tempfile::TempDir>,
    guard: Option<Box<dyn std::any::Any>>,
}

impl Fixture {
    fn over(raw: Arc<dyn SessionStore>) -> Self {
        Self {
            raw,
            clock: ManualClock(Arc::new(Mutex::new(phaze_testkit::t0()))),
            key: Key::generate(),
            dir: None,
            guard: None,
        }
    }

    pub(crate) fn memory() -> Self {
        Self::over(Arc::new(phaze_store_memory::MemorySessions::default()))
    }

    /// The filesystem store on a fresh temporary data directory, as `phaze_store_fs`'s own tests
    /// open it.
    pub(crate) fn fs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Self::over(Arc::new(
            phaze_store_fs::FsSessions::open(dir.path()).unwrap(),
        ));
        f.dir = Some(dir);
        f
    }

    /// Over any store, keeping `guard` alive as long as the fixture.
    pub(crate) fn with_guard(raw: Arc<dyn SessionStore>, guard: Box<dyn std::any::Any>) -> Self {
        let mut f = Self::over(raw);
        f.guard = Some(guard);
        f
    }

    /// The actix-session store under test, sealing with [`sealer`].
    pub(crate) fn store(&self) -> PhazeSessionStore {
        self.store_sealing_with(sealer())
    }

    pub(crate) fn store_sealing_with(&self, sealer: Sealer) -> PhazeSessionStore {
        let clock = self.clock.clone();
        PhazeSessionStore::new(self.raw.clone(), sealer).with_clock(move || clock.now())
    }

    /// The default middleware over [`Fixture::store`] with this fixture's cookie key.
    pub(crate) fn middleware(&self) -> SessionMiddleware<PhazeSessionStore> {
        SessionMiddleware::new(self.store(), self.key.clone())
    }

    /// A middleware with the given cookie security and a persistent session of `ttl`.
    pub(crate) fn middleware_with(
        &self,
        policy: CookieContentSecurity,
        ttl: Duration,
    ) -> SessionMiddleware<PhazeSessionStore> {
        SessionMiddleware::builder(self.store(), self.key.clone())
            .cookie_content_security(policy)
            .session_lifecycle(PersistentSession::default().session_ttl(ttl))
            .build()
    }

    /// The record behind the session id in a cookie this fixture's middleware set.
    pub(crate) async fn record_of(&self, cookie: &Cookie<'_>) -> Option<StoredSession> {
        let id = self.id_in(cookie, CookieContentSecurity::Private);
        self.raw
            .get(&SessionId::parse(&id).unwrap().key())
            .await
            .unwrap()
    }

    /// What actix-session put in the cookie after decrypting (or checking the signature of) it
    /// with this fixture's key: the value its store minted.
    pub(crate) fn id_in(&self, cookie: &Cookie<'_>, policy: CookieContentSecurity) -> String {
        let mut jar = CookieJar::new();
        jar.add_original(cookie.clone().into_owned());
        let opened = match policy {
            CookieContentSecurity::Private => jar.private(&self.key).get(cookie.name()),
            CookieContentSecurity::Signed => jar.signed(&self.key).get(cookie.name()),
        };
        opened.unwrap().value().to_owned()
    }

    /// A session cookie carrying `value`, encrypted with this fixture's key as actix-session
    /// would: what an attacker holding the key, or a bug, could hand the store.
    pub(crate) fn cookie_with(&self, value: &str) -> Cookie<'static> {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(COOKIE, value.to_owned()));
        jar.get(COOKIE).unwrap().clone().into_owned()
    }

    /// Every byte the filesystem store wrote (file names included); empty for other stores.
    pub(crate) fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(dir) = &self.dir {
            dump_dir(dir.path(), &mut out);
        }
        out
    }
}

fn dump_dir(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.extend_from_slice(entry.file_name().as_encoded_bytes());
        out.push(b'\n');
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            dump_dir(&path, out);
        } else {
            out.extend_from_slice(&std::fs::read(&path).unwrap());
        }
    }
}

/// The sealing key the tests' stores use.
pub(crate) fn sealer() -> Sealer {
    Sealer::new(vec![SealingKey::new(&[7; 32])]).unwrap()
}

/// A sealer with another key: the service's key was replaced, not rotated.
pub(crate) fn other_sealer() -> Sealer {
    Sealer::new(vec![SealingKey::new(&[8; 32])]).unwrap()
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The session cookie a response set, if any.
pub(crate) fn set_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == COOKIE)
        .map(Cookie::into_owned)
}

/// The store key of the id in `cookie`.
pub(crate) fn key_of(f: &Fixture, cookie: &Cookie<'_>) -> SessionKey {
    SessionId::parse(&f.id_in(cookie, CookieContentSecurity::Private))
        .unwrap()
        .key()
}

/// A small service on actix-session: `POST /set/{k}/{v}`, `GET /get/{k}` (the value or `-`),
/// `GET /len` (how many entries), `POST /renew`, `POST /purge`, `GET /touch` (reads nothing).
pub(crate) async fn app(
    middleware: SessionMiddleware<PhazeSessionStore>,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(
        App::new()
            .wrap(middleware)
            .route(
                "/set/{k}/{v}",
                web::post().to(
                    |session: Session, path: web::Path<(String, String)>| async move {
                        let (k, v) = path.into_inner();
                        session.insert(k, v)?;
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
                    },
                ),
            )
            .route(
                "/get/{k}",
                web::get().to(|session: Session, k: web::Path<String>| async move {
                    let v: Option<String> = session.get(&k)?;
                    Ok::<_, actix_web::Error>(v.unwrap_or_else(|| "-".to_owned()))
                }),
            )
            .route(
                "/len",
                web::get()
                    .to(|session: Session| async move { session.entries().len().to_string() }),
            )
            .route(
                "/renew",
                web::post().to(|session: Session| async move {
                    session.renew();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/purge",
                web::post().to(|session: Session| async move {
                    session.purge();
                    HttpResponse::Ok().finish()
                }),
            )
            .route("/touch", web::get().to(|| async { "ok" })),
    )
    .await
}

/// A request with the session cookie, if any.
pub(crate) fn request(
    method: &str,
    uri: &str,
    cookie: Option<&Cookie<'static>>,
) -> actix_http::Request {
    let req = match method {
        "POST" => test::TestRequest::post(),
        _ => test::TestRequest::get(),
    }
    .uri(uri);
    match cookie {
        Some(c) => req.cookie(c.clone()),
        None => req,
    }
    .to_request()
}

/// Sends a request and returns the status, the session cookie set (if any) and the body.
pub(crate) async fn send<S, B>(
    app: &S,
    method: &str,
    uri: &str,
    cookie: Option<&Cookie<'static>>,
) -> (u16, Option<Cookie<'static>>, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    // A middleware error (a store failure) is an `Err` here; a server turns it into its response.
    let res = match app.call(request(method, uri, cookie)).await {
        Ok(res) => res,
        Err(e) => {
            return (
                e.as_response_error().status_code().as_u16(),
                None,
                String::new(),
            )
        }
    };
    let status = res.status().as_u16();
    let set = set_cookie(&res);
    let body = test::read_body(res).await;
    (status, set, String::from_utf8(body.to_vec()).unwrap())
}
