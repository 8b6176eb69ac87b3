//! Input that looks like SQL is stored and matched as plain data: every value is a bound
//! parameter, never spliced into a statement.

use phaze_auth::{DisplayName, Email};
use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
use phaze_sessions::SessionStore;
use phaze_store_postgres::{PgError, Postgres};
use phaze_testkit::accounts::{account, sealed};
use phaze_testkit::sessions::record;
use phaze_testkit::t0;

use crate::support::{self, config};

const HOSTILE_EMAILS: &[&str] = &[
    "o'brien@example.com",
    "x'--@example.com",
    "'or'1'='1@example.com",
    "a%@example.com",
    "a_c@example.com",
    "$1@example.com",
    "{$where}@example.com",
    "*/*@example.com",
    // A quote in the domain is no address (IDNA's STD3 rules refuse it): quotes live in the
    // local part, where they are valid.
    "x''='x@example.com",
    "\u{fc}n\u{ef}c\u{f8}d\u{e9}@example.com",
    "\u{1f980}@example.com",
];

const HOSTILE_NAMES: &[&str] = &[
    "Robert'); DROP TABLE accounts; --",
    "\"quoted\" and 'single' and `back`",
    "back\\slash \\x00 \\\\",
    "$$ dollar $$ $1 $2",
    "% _ * ? [a-z] ^$",
    "<script>alert(1)</script>",
    "\u{65e5}\u{672c}\u{8a9e} \u{1f980} \u{fc}n\u{ef}c\u{f8}d\u{e9}",
    "E'\\x27'; SELECT pg_sleep(10); --",
    "/* comment */ -- line",
];

pub(crate) async fn sql_lookalikes_round_trip_unchanged() {
    let db = support::fresh().await;
    let accounts = sealed(std::sync::Arc::new(db.pg.accounts()));
    let mut stored = Vec::new();
    for (i, raw) in HOSTILE_EMAILS.iter().enumerate() {
        let email = Email::parse(raw).unwrap_or_else(|| panic!("{raw} should be valid"));
        let mut a = account(email.as_str());
        a.display_name = DisplayName::parse(HOSTILE_NAMES[i % HOSTILE_NAMES.len()]).unwrap();
        accounts.insert(&a).await.unwrap();
        stored.push(a);
    }
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        let mut a = stored[i].clone();
        a.display_name = DisplayName::parse(name).unwrap();
        assert_eq!(
            a.display_name.as_str(),
            *name,
            "the test's names are normalised already"
        );
        accounts.update(&a).await.unwrap();
        stored[i] = a;
    }
    for a in &stored {
        assert_eq!(accounts.by_email(&a.email).await.unwrap().as_ref(), Some(a));
        assert_eq!(accounts.by_id(&a.id).await.unwrap().as_ref(), Some(a));
    }
    // LIKE metacharacters match only themselves.
    for near in ["abc@example.com", "a@example.com", "ax@example.com"] {
        let email = Email::parse(near).unwrap();
        assert_eq!(accounts.by_email(&email).await.unwrap(), None, "{near}");
    }
    // The database holds neither the address nor the name, and every table is still there.
    for a in &stored {
        let row = db
            .admin
            .query_one(
                &format!(
                    "SELECT email, display_name, email_index IS NOT NULL FROM \"{}\".accounts \
                     WHERE id::text = $1",
                    db.schema()
                ),
                &[&a.id.to_string()],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0), None);
        assert_eq!(row.get::<_, Option<String>>(1), None);
        assert!(row.get::<_, bool>(2));
    }
    let tables: i64 = db
        .admin
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&db.schema()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 11);
    db.pg.check_schema().await.unwrap();
}

pub(crate) async fn hostile_session_owners_are_plain_bytes() {
    let db = support::fresh().await;
    let sessions = db.pg.sessions();
    // `text` could not hold the NUL; the owner column is bytes.
    let owners = [
        "x\0y",
        "alice' OR '1'='1",
        "%",
        "_",
        "\\",
        "'); DELETE FROM sessions; --",
        "\u{202e}txt.exe",
        "",
    ];
    for (n, owner) in owners.iter().enumerate() {
        let s = record(n as u8, owner);
        sessions.insert(&s).await.unwrap();
        assert_eq!(
            sessions.list_user(owner).await.unwrap(),
            vec![s.clone()],
            "{owner:?}"
        );
        assert!(sessions.update(&s).await.unwrap());
    }
    assert!(sessions.list_user("x").await.unwrap().is_empty());
    assert!(sessions.list_user("alice").await.unwrap().is_empty());
    assert_eq!(sessions.remove_user("%", None).await.unwrap(), 1);
    assert_eq!(sessions.list_user("_").await.unwrap().len(), 1);

    // Keys are bytes too, whatever they spell.
    let limits = db.pg.rate_limits();
    let k = LimitKey::from(*b"'; DROP TABLE rate_limits; --xx\0");
    let w = Window::new(1, time::Duration::minutes(1));
    assert!(limits.hit(&k, w, t0()).await.unwrap().allowed);
    assert!(!limits.hit(&k, w, t0()).await.unwrap().allowed);
}

pub(crate) fn invalid_schema_names_are_refused_before_any_sql() {
    for bad in [
        "phaze\"; DROP SCHEMA public CASCADE; --",
        "Phaze",
        "phaze.public",
        "pg_catalog",
        "",
        "ph\u{e4}ze",
    ] {
        let e = Postgres::new(&config(Some(bad))).unwrap_err();
        assert!(matches!(e, PgError::InvalidSchema { .. }), "{bad:?}: {e}");
    }
    // A valid one builds, outside any runtime: `new` does no I/O.
    Postgres::new(&config(Some("phaze_ok"))).unwrap();
}
