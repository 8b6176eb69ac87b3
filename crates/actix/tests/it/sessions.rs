//! What `PhazeSessionStore` adds to actix-session, through actix-session's own middleware: the
//! store holds hashes of ids and sealed state, expiry is the server's, and whatever the cookie
//! carries that is not a live session of this store is a fresh, empty session.

use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::storage::{SessionKey as CookieValue, SessionStore as _};
use actix_session::SessionMiddleware;
use phaze_sessions::{SessionId, SessionStore, StoredSession};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use time::Duration;

use crate::support::{app, contains, key_of, other_sealer, send, Fixture, COOKIE};

const SECRET: &str = "swordfish-4711";
const FIELD: &str = "password-hint";

/// Set, read, change and purge, as with actix-session's stores.
pub(crate) async fn insert_get_change_purge(f: Fixture) {
    let app = app(f.middleware()).await;
    let (status, none, body) = send(&app, "GET", "/len", None).await;
    assert_eq!((status, none.is_none(), body.as_str()), (200, true, "0"));

    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let c1 = set.unwrap();
    let (_, again, body) = send(&app, "GET", "/get/colour", Some(&c1)).await;
    assert_eq!((again, body.as_str()), (None, "teal"));

    // A change keeps the id.
    let (_, set, _) = send(&app, "POST", "/set/shape/round", Some(&c1)).await;
    assert_eq!(key_of(&f, &set.unwrap()), key_of(&f, &c1));
    let (_, _, body) = send(&app, "GET", "/len", Some(&c1)).await;
    assert_eq!(body, "2");

    // Purge: the cookie is cleared and the record deleted.
    let (_, removal, _) = send(&app, "POST", "/purge", Some(&c1)).await;
    let removal = removal.unwrap();
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(Duration::ZERO));
    assert!(f.raw.get(&key_of(&f, &c1)).await.unwrap().is_none());
    let (_, set, body) = send(&app, "GET", "/get/colour", Some(&c1)).await;
    assert_eq!((set, body.as_str()), (None, "-"));
}

/// `renew()` gives a new id with the same state; the old id no longer loads and its record is
/// gone.
pub(crate) async fn renew_gives_a_new_id_and_the_old_one_no_longer_loads(f: Fixture) {
    let app = app(f.middleware()).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let old = set.unwrap();
    let (_, set, _) = send(&app, "POST", "/renew", Some(&old)).await;
    let new = set.unwrap();
    assert_ne!(key_of(&f, &old), key_of(&f, &new));
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&new)).await;
    assert_eq!(body, "teal");
    let (_, set, body) = send(&app, "GET", "/get/colour", Some(&old)).await;
    assert_eq!((set, body.as_str()), (None, "-"));
    assert!(f.raw.get(&key_of(&f, &old)).await.unwrap().is_none());
}

/// With a signed cookie (readable by the client) the cookie shows the id; the store has a record
/// only under the id's SHA-256, and holds the id nowhere, not even in the owner it files it under.
pub(crate) async fn the_store_is_keyed_by_the_sha256_of_the_cookie_value(f: Fixture) {
    let mw = f.middleware_with(CookieContentSecurity::Signed, Duration::hours(1));
    let app = app(mw).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let cookie = set.unwrap();
    let id = f.id_in(&cookie, CookieContentSecurity::Signed);
    assert!(
        cookie.value().ends_with(&id),
        "a signed cookie shows its value"
    );
    assert!(
        SessionId::parse(&id).is_some(),
        "a 256-bit Phaze id: {id:?}"
    );

    let hash: [u8; 32] = Sha256::digest(id.as_bytes()).into();
    let record = f.raw.get(&hash.into()).await.unwrap().unwrap();
    assert_eq!(record.key.as_bytes(), &hash);
    assert_eq!(record.user_id, format!("actix-session:{}", hex(&hash)));
    assert!(record.successor.is_none());
    for bytes in [
        record.sealed.as_slice(),
        record.user_id.as_bytes(),
        &f.dump(),
    ] {
        assert!(!contains(bytes, id.as_bytes()));
    }
    // Not a user's session: the per-user index cannot serve it.
    assert!(f.raw.list_user("").await.unwrap().is_empty());
}

/// Neither the state's values nor its field names are in the store in clear.
pub(crate) async fn stored_bytes_hold_no_state_in_clear(f: Fixture) {
    let app = app(f.middleware()).await;
    let uri = format!("/set/{FIELD}/{SECRET}");
    let (_, set, _) = send(&app, "POST", &uri, None).await;
    let record = f.record_of(&set.unwrap()).await.unwrap();
    for bytes in [record.sealed.as_slice(), &f.dump()] {
        assert!(!contains(bytes, SECRET.as_bytes()));
        assert!(!contains(bytes, FIELD.as_bytes()));
    }
    if f.dir.is_some() {
        assert!(!f.dump().is_empty(), "the fs store wrote files");
    }
}

/// A cookie that fails actix-session's check (forged, truncated), or that carries an id this
/// store never issued, is a fresh, empty session: nothing is read, and a change gets a new id.
pub(crate) async fn forged_truncated_or_unknown_cookies_give_a_fresh_empty_session(f: Fixture) {
    let app = app(f.middleware()).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let real = set.unwrap();
    let real_id = f.id_in(&real, CookieContentSecurity::Private);

    let mut truncated = real.clone();
    truncated.set_value(real.value()[..real.value().len() - 4].to_owned());
    let mut flipped_id = real_id.clone().into_bytes();
    flipped_id[10] = if flipped_id[10] == b'A' { b'B' } else { b'A' };
    let cookies = [
        // Forged: the id in clear, not encrypted with the key.
        actix_web::cookie::Cookie::new(COOKIE, real_id.clone()),
        truncated,
        // Well-formed ids this store never issued.
        f.cookie_with(SessionId::generate().expose()),
        f.cookie_with(std::str::from_utf8(&flipped_id).unwrap()),
    ];
    for cookie in cookies {
        let (status, set, body) = send(&app, "GET", "/len", Some(&cookie)).await;
        assert_eq!((status, set, body.as_str()), (200, None, "0"));
        let (_, set, _) = send(&app, "POST", "/set/colour/red", Some(&cookie)).await;
        let fresh = key_of(&f, &set.unwrap());
        assert_ne!(fresh, key_of(&f, &real));
    }
    // The real session is untouched.
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&real)).await;
    assert_eq!(body, "teal");
}

/// A record copied under another session's key does not open there (the key is the associated
/// data): the client of that key gets a fresh session and the grafted record is deleted.
pub(crate) async fn a_record_moved_to_another_key_does_not_open(f: Fixture) {
    let app = app(f.middleware()).await;
    let (_, a, _) = send(&app, "POST", "/set/owner/alice", None).await;
    let (_, b, _) = send(&app, "POST", "/set/owner/bob", None).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    let ra = f.record_of(&a).await.unwrap();
    let rb = f.record_of(&b).await.unwrap();
    let grafted = StoredSession {
        sealed: ra.sealed.clone(),
        ..rb.clone()
    };
    assert!(f.raw.update(&grafted).await.unwrap());

    let (_, set, body) = send(&app, "GET", "/get/owner", Some(&b)).await;
    assert_eq!((set, body.as_str()), (None, "-"));
    assert!(f.raw.get(&rb.key).await.unwrap().is_none());
    let (_, _, body) = send(&app, "GET", "/get/owner", Some(&a)).await;
    assert_eq!(body, "alice");
}

/// A record sealed under a key the service no longer has (replaced, not rotated) is a fresh
/// session, never an error page.
pub(crate) async fn a_record_sealed_under_a_dropped_key_is_a_fresh_session(f: Fixture) {
    let app = app(f.middleware()).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let cookie = set.unwrap();
    let replaced = app_with_sealer(&f, other_sealer()).await;
    let (status, set, body) = send(&replaced, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!((status, set, body.as_str()), (200, None, "-"));
}

/// Records carry the TTL actix-session passes: served until then, never after, and deleted when
/// next presented. A change moves the expiry (actix-session's `OnStateChanges`).
pub(crate) async fn expired_records_are_not_served_and_are_deleted(f: Fixture) {
    let ttl = Duration::minutes(5);
    let app = app(f.middleware_with(CookieContentSecurity::Private, ttl)).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let cookie = set.unwrap();
    let record = f.record_of(&cookie).await.unwrap();
    assert_eq!(record.expires_at, f.clock.now() + ttl);

    f.clock.advance(Duration::minutes(4));
    let (_, set, _) = send(&app, "POST", "/set/colour/plum", Some(&cookie)).await;
    assert_eq!(key_of(&f, &set.unwrap()), key_of(&f, &cookie));
    f.clock.advance(Duration::minutes(4));
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!(
        body, "plum",
        "the change at 4 min moved the expiry to 9 min"
    );

    f.clock.advance(Duration::minutes(1));
    let (_, set, body) = send(&app, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!((set, body.as_str()), (None, "-"));
    assert!(f.raw.get(&key_of(&f, &cookie)).await.unwrap().is_none());
}

/// The expiry is also sealed: moving `expires_at` in the store does not keep a session alive.
pub(crate) async fn a_moved_clear_expiry_does_not_extend_a_session(f: Fixture) {
    let app = app(f.middleware_with(CookieContentSecurity::Private, Duration::minutes(5))).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let cookie = set.unwrap();
    let record = f.record_of(&cookie).await.unwrap();
    let extended = StoredSession {
        expires_at: record.expires_at + Duration::days(30),
        ..record
    };
    assert!(f.raw.update(&extended).await.unwrap());
    f.clock.advance(Duration::minutes(6));
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!(body, "-");
    assert!(f.raw.get(&extended.key).await.unwrap().is_none());
}

/// With `OnEveryRequest`, a request that changes nothing moves the expiry (`update_ttl`).
pub(crate) async fn every_request_moves_the_expiry_if_configured(f: Fixture) {
    let ttl = Duration::minutes(5);
    let mw = SessionMiddleware::builder(f.store(), f.key.clone())
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(ttl)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build();
    let app = app(mw).await;
    let (_, set, _) = send(&app, "POST", "/set/colour/teal", None).await;
    let cookie = set.unwrap();
    f.clock.advance(Duration::minutes(4));
    let (_, set, _) = send(&app, "GET", "/touch", Some(&cookie)).await;
    assert_eq!(
        set.unwrap().max_age(),
        Some(ttl),
        "the cookie is re-set too"
    );
    let record = f.record_of(&cookie).await.unwrap();
    assert_eq!(record.expires_at, f.clock.now() + ttl);
    f.clock.advance(Duration::minutes(4));
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!(body, "teal");
    f.clock.advance(Duration::minutes(6));
    let (_, _, body) = send(&app, "GET", "/get/colour", Some(&cookie)).await;
    assert_eq!(body, "-");
}

/// `update` keeps the id while the record lives. Once it has gone (deleted by a parallel logout,
/// or expired while the request ran) the logout wins: the request's state is dropped and the
/// client is handed a fresh, empty session; the dead id stays dead. (actix-session's Redis store
/// would save the state under a new id, bringing the logged-out session back.)
pub(crate) async fn update_keeps_the_id_while_the_record_lives(f: Fixture) {
    let store = f.store();
    let ttl = Duration::minutes(5);
    let k1 = store.save(state("user", "ada"), &ttl).await.unwrap();
    let k1_again = store
        .update(copy(&k1), state("user", "ada"), &ttl)
        .await
        .unwrap();
    assert_eq!(k1_again, k1);
    assert_eq!(store.load(&k1).await.unwrap(), Some(state("user", "ada")));

    // A logout in one tab, then a request of another tab that changed the state finishes.
    store.delete(&k1).await.unwrap();
    let k2 = store
        .update(copy(&k1), state("user", "ada"), &ttl)
        .await
        .unwrap();
    assert_ne!(k2, k1);
    assert_eq!(store.load(&k1).await.unwrap(), None);
    assert_eq!(store.load(&k2).await.unwrap(), None, "the logout stands");

    let k3 = store.save(state("user", "ada"), &ttl).await.unwrap();
    f.clock.advance(ttl);
    let k4 = store
        .update(copy(&k3), state("user", "ada"), &ttl)
        .await
        .unwrap();
    assert_ne!(k4, k3);
    assert_eq!(store.load(&k3).await.unwrap(), None);
    assert_eq!(
        store.load(&k4).await.unwrap(),
        None,
        "an expired session is not extended"
    );
}

/// Cookie values no Phaze id looks like, sealed with the service's key so that they get past
/// actix-session's check to the store: refused without a panic, as a fresh, empty session. And
/// the same values straight into the store's methods.
pub(crate) async fn hostile_cookie_values_are_refused_without_panics(f: Fixture) {
    let app = app(f.middleware()).await;
    let live = SessionId::generate();
    let hostile: Vec<String> = vec![
        String::new(),
        "a".repeat(4000),
        "a".repeat(5000), // over actix-session's own 4064-byte limit
        "not base64 at all!".to_owned(),
        "\0\u{1}\r\n\t\u{7f}\u{1b}[2J".to_owned(),
        "+".repeat(43),
        format!("{}=", "A".repeat(42)),
        "é".repeat(22),
        format!("{} ", live.expose()),
        format!("{}\n", live.expose()),
        "../../../etc/passwd".to_owned(),
        "*".to_owned(),
    ];
    for value in &hostile {
        let cookie = f.cookie_with(value);
        let (status, set, body) = send(&app, "GET", "/len", Some(&cookie)).await;
        assert_eq!((status, set, body.as_str()), (200, None, "0"), "{value:?}");
        let (status, set, _) = send(&app, "POST", "/set/k/v", Some(&cookie)).await;
        assert_eq!(status, 200, "{value:?}");
        let fresh = f.id_in(&set.unwrap(), CookieContentSecurity::Private);
        assert!(SessionId::parse(&fresh).is_some() && &fresh != value);
        let (status, _, _) = send(&app, "POST", "/purge", Some(&cookie)).await;
        assert_eq!(status, 200, "{value:?}");
    }

    let store = f.store();
    let ttl = Duration::minutes(5);
    for value in hostile.iter().filter(|v| v.len() <= 4064) {
        let key = || CookieValue::try_from(value.clone()).unwrap();
        assert_eq!(store.load(&key()).await.unwrap(), None, "{value:?}");
        store.update_ttl(&key(), &ttl).await.unwrap();
        store.delete(&key()).await.unwrap();
        let fresh = store.update(key(), state("k", "v"), &ttl).await.unwrap();
        assert_ne!(fresh.as_ref(), value.as_str());
        assert_eq!(store.load(&fresh).await.unwrap(), None, "nothing revived");
    }
}

/// Expired records nobody presents again are swept by `purge_expired`.
pub(crate) async fn purge_expired_sweeps_what_nobody_presented(f: Fixture) {
    let store = f.store();
    let mut keys = Vec::new();
    for n in 0..3 {
        let ttl = Duration::minutes(5 + n);
        let k = store.save(state("n", &n.to_string()), &ttl).await.unwrap();
        keys.push(SessionId::parse(k.as_ref()).unwrap().key());
    }
    f.clock.advance(Duration::minutes(6));
    assert_eq!(store.purge_expired().await.unwrap(), 2);
    let left: Vec<bool> = which_remain(&f, &keys).await;
    assert_eq!(left, [false, false, true]);
}

async fn which_remain(f: &Fixture, keys: &[phaze_sessions::SessionKey]) -> Vec<bool> {
    let mut out = Vec::new();
    for k in keys {
        out.push(f.raw.get(k).await.unwrap().is_some());
    }
    out
}

async fn app_with_sealer(
    f: &Fixture,
    sealer: phaze_sessions::Sealer,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    app(SessionMiddleware::new(
        f.store_sealing_with(sealer),
        f.key.clone(),
    ))
    .await
}

fn state(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_owned(), v.to_owned())])
}

/// actix-session's key is not `Clone`.
fn copy(k: &CookieValue) -> CookieValue {
    CookieValue::try_from(k.as_ref().to_owned()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A store that always fails, for the fail-closed test.
struct Down;

#[async_trait::async_trait]
impl SessionStore for Down {
    async fn insert(&self, _: &StoredSession) -> Result<(), phaze_sessions::StoreError> {
        Err(down())
    }
    async fn get(
        &self,
        _: &phaze_sessions::SessionKey,
    ) -> Result<Option<StoredSession>, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn update(&self, _: &StoredSession) -> Result<bool, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn rotate(
        &self,
        _: &StoredSession,
        _: &StoredSession,
    ) -> Result<phaze_sessions::Rotation, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn remove(
        &self,
        _: &phaze_sessions::SessionKey,
    ) -> Result<bool, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn list_user(&self, _: &str) -> Result<Vec<StoredSession>, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn remove_user(
        &self,
        _: &str,
        _: Option<&phaze_sessions::SessionKey>,
    ) -> Result<usize, phaze_sessions::StoreError> {
        Err(down())
    }
    async fn purge_expired(
        &self,
        _: time::OffsetDateTime,
    ) -> Result<usize, phaze_sessions::StoreError> {
        Err(down())
    }
}

fn down() -> phaze_sessions::StoreError {
    phaze_sessions::StoreError::Backend("store is down".into())
}

/// A store failure is a 500 from actix-session, never a fresh session that a handler would take
/// for "not logged in".
pub(crate) async fn a_store_failure_is_a_500_not_a_fresh_session() {
    let f = Fixture::with_guard(std::sync::Arc::new(Down), Box::new(()));
    let app = app(f.middleware()).await;
    let cookie = f.cookie_with(SessionId::generate().expose());
    let (status, set, _) = send(&app, "GET", "/len", Some(&cookie)).await;
    assert_eq!((status, set), (500, None));
    let (status, set, _) = send(&app, "POST", "/set/k/v", None).await;
    assert_eq!((status, set), (500, None));
}
