use super::*;

fn check(name: &str, ok: bool) {
    assert_eq!(check_identifier(name).is_ok(), ok, "{name:?}");
}

#[test]
fn schema_names_are_plain_lower_case_identifiers() {
    for good in ["phaze", "_x", "phaze_test_0123abcd", "a1", &"a".repeat(63)] {
        check(good, true);
    }
    for bad in [
        "",
        "Phaze",
        "1phaze",
        "phaze-test",
        "phaze test",
        "phaze\"; DROP TABLE accounts; --",
        "phaze.accounts",
        "ph\u{e4}ze",
        "phaze\0",
        "pg_catalog",
        "pg_temp",
        &"a".repeat(64),
    ] {
        check(bad, false);
    }
}

fn config(url: &str) -> PgConfig {
    PgConfig {
        url: url.to_owned(),
        schema: None,
        ca_file: None,
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
        query_timeout: std::time::Duration::from_secs(5),
    }
}

#[test]
fn debug_never_shows_the_password() {
    for url in [
        "postgres://phaze:hunter2-secret@db.internal:5433/portal?sslmode=require",
        "postgresql://phaze@db.internal/portal?password=hunter2-secret",
        "host=db.internal user=phaze password=hunter2-secret dbname=portal",
        "host=db.internal user=phaze password='hunter2-secret with spaces' dbname=portal",
        "postgres://phaze:hunter2-secret@db.internal:notaport/portal",
        "hunter2-secret",
    ] {
        let shown = format!("{:?}", config(url));
        assert!(!shown.contains("hunter2"), "{shown}");
        if let Err(e) = config(url).validate() {
            let mut chain = format!("{e} {e:?}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!chain.contains("hunter2"), "{chain}");
        }
    }
    assert_eq!(
        format!(
            "{:?}",
            Redacted("postgres://phaze:pw@db:5433/portal?sslmode=require")
        ),
        "\"postgres://phaze:<redacted>@db:5433/portal?sslmode=require\""
    );
}

#[test]
fn settings_out_of_range_are_refused() {
    let mut c = config("postgres://phaze@db/portal");
    assert!(c.validate().is_ok());
    c.schema = Some("Bad-Name".into());
    assert!(matches!(c.validate(), Err(PgError::InvalidSchema { .. })));
    c.schema = None;
    c.pool_size = 0;
    assert!(matches!(c.validate(), Err(PgError::InvalidSetting(_))));
    c.pool_size = 1;
    c.wait_timeout = Duration::ZERO;
    assert!(matches!(c.validate(), Err(PgError::InvalidSetting(_))));
    c.wait_timeout = Duration::from_secs(1);
    c.connect_timeout = Duration::ZERO;
    assert!(matches!(c.validate(), Err(PgError::InvalidSetting(_))));
    c.connect_timeout = Duration::from_secs(1);
    c.url = "postgres://phaze@db/portal?sslmode=sometimes".into();
    assert!(matches!(c.validate(), Err(PgError::InvalidUrl(_))));
}

#[test]
fn timeouts_are_bounded_by_the_config() {
    let s = config("postgres://phaze@db/portal?connect_timeout=60")
        .validate()
        .unwrap();
    assert_eq!(s.pg.get_connect_timeout(), Some(&Duration::from_secs(1)));
    assert_eq!(s.pg.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
    assert_eq!(s.pg.get_keepalives_idle(), KEEPALIVES_IDLE);
    assert_eq!(s.pg.get_application_name(), Some("phaze"));
    let s = config("postgres://phaze@db/portal?keepalives_idle=600&application_name=x")
        .validate()
        .unwrap();
    assert_eq!(s.pg.get_keepalives_idle(), Duration::from_secs(600));
    assert_eq!(s.pg.get_application_name(), Some("x"));
}
