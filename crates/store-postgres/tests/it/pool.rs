//! The pool: dead connections are replaced at once, every wait is bounded, and errors never show
//! the password.

use phaze_ratelimit::{RateLimitStore, Window};
use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use std::time::{Duration, Instant};

use crate::support::{self, chain, config, POOL_SIZE};

/// The test URL with `application_name` set, so the admin side can find this pool's backends.
pub(crate) fn url_named(app: &str) -> String {
    let url = phaze_testkit::database_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={app}")
}

pub(crate) async fn backends(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Has the server end every backend named `app`, as a restart or failover does.
pub(crate) async fn terminate(admin: &tokio_postgres::Client, app: &str) {
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
}

/// [`terminate`], then waits until the server has ended them, as it has once a restart is under
/// way, and until this process's end of each of their sockets is read and closed (the
/// connection's driver task has seen the server's goodbye), which is what a checkout relies on.
pub(crate) async fn end_backends(admin: &tokio_postgres::Client, app: &str) {
    let ports: Vec<u16> = admin
        .query(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.get::<_, Option<i32>>(0))
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    terminate(admin, app).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !backends(admin, app).await.is_empty() || unread_closes(&ports) {
        assert!(
            Instant::now() < deadline,
            "backends survived termination, or their clients never noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a local TCP socket on one of `ports` is in CLOSE_WAIT: the server closed it and this
/// process has not yet read that and closed its end. Read from Linux's `/proc/self/net/tcp{,6}`;
/// where they do not exist it is `false`, and nothing is waited for.
fn unread_closes(ports: &[u16]) -> bool {
    const CLOSE_WAIT: &str = "08";
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .any(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields
                    .get(1)
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
                fields.get(3) == Some(&CLOSE_WAIT) && local_port.is_some_and(|p| ports.contains(&p))
            })
        })
}

/// Opens every connection of `pg`'s pool.
async fn fill(pg: &Postgres) {
    let pings: Vec<_> = (0..POOL_SIZE * 2)
        .map(|_| {
            let pg = pg.clone();
            tokio::spawn(async move { pg.ping().await })
        })
        .collect();
    for p in futures_util::future::join_all(pings).await {
        p.unwrap().unwrap();
    }
}

/// `POOL_SIZE * 2` concurrent requests (a ping and a rate-limit hit each); how many failed.
async fn burst(pg: &Postgres) -> usize {
    let limits = pg.rate_limits();
    let w = Window::new(1_000_000, time::Duration::minutes(1));
    let work: Vec<_> = (0..POOL_SIZE * 2)
        .map(|_| {
            let (pg, limits) = (pg.clone(), limits.clone());
            tokio::spawn(async move {
                pg.ping().await.is_ok() && limits.hit(&key(1), w, t0()).await.is_ok()
            })
        })
        .collect();
    futures_util::future::join_all(work)
        .await
        .into_iter()
        .filter(|ok| !ok.as_ref().unwrap())
        .count()
}

/// What a PostgreSQL restart does to a pool (the server ends every connection: "terminating
/// connection due to administrator command"), done to this pool's backends only, so the shared
/// server stays up for everyone else. Once the server has closed them, no request gets a dead
/// connection: each checkout drops the closed ones and opens new ones.
pub(crate) async fn connections_closed_by_the_server_are_replaced() {
    let db = support::fresh().await;
    let app = db.schema().to_owned();
    let pg = Postgres::new(&PgConfig {
        url: url_named(&app),
        ..config(Some(db.schema()))
    })
    .unwrap();
    fill(&pg).await;
    for round in 0..3 {
        let before = backends(&db.admin, &app).await;
        assert!(!before.is_empty());
        end_backends(&db.admin, &app).await;
        let started = Instant::now();
        assert_eq!(burst(&pg).await, 0, "round {round}");
        assert!(started.elapsed() < Duration::from_secs(3), "round {round}");
        let after = backends(&db.admin, &app).await;
        assert!(!after.is_empty());
        assert!(
            after.iter().all(|pid| !before.contains(pid)),
            "only new backends serve"
        );
    }
}

/// Requests racing the termination itself (issued before the connections' drivers have seen the
/// server's goodbye) may fail, at most once per connection, and within a second every request
/// succeeds again.
pub(crate) async fn requests_racing_a_restart_recover_within_a_second() {
    let db = support::fresh().await;
    let app = db.schema().to_owned();
    let pg = Postgres::new(&PgConfig {
        url: url_named(&app),
        ..config(Some(db.schema()))
    })
    .unwrap();
    fill(&pg).await;
    let open = backends(&db.admin, &app).await.len();
    terminate(&db.admin, &app).await;
    let started = Instant::now();
    let mut failed = 0;
    loop {
        match burst(&pg).await {
            0 => break,
            n => failed += n,
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{failed} failed"
        );
    }
    // A request that fails with a closed connection takes one dead connection out of the pool.
    assert!(
        failed <= 2 * open,
        "{failed} failures for {open} connections"
    );
}

/// The harness's check for [`an_idle_connection_that_does_not_answer_is_replaced`]: the server's
/// processes are on this machine and this process may signal them (root, as in CI).
pub(crate) fn server_processes_here() -> Result<(), String> {
    support::block_on(async {
        // The backend of a connection held open while it is checked.
        let admin = support::admin().await;
        let pid: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // Only a local postgres process may be signalled: a remote server's pid means nothing.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            return Err("the server's processes are not on this machine".to_owned());
        }
        let may_signal = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !may_signal {
            return Err("this process may not signal the server's processes".to_owned());
        }
        Ok(())
    })
}

/// A connection idle for a second or more is pinged before use; one that does not answer (here:
/// its server process is stopped, as a vanished host or a silent network would leave it) is
/// dropped after the connect timeout and replaced. Needs [`server_processes_here`].
pub(crate) async fn an_idle_connection_that_does_not_answer_is_replaced() {
    let db = support::fresh().await;
    let app = db.schema().to_owned();
    let pg = Postgres::new(&PgConfig {
        url: url_named(&app),
        pool_size: 1,
        connect_timeout: Duration::from_millis(500),
        ..config(Some(db.schema()))
    })
    .unwrap();
    pg.ping().await.unwrap();
    let [pid] = backends(&db.admin, &app).await[..] else {
        panic!("one connection expected");
    };
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(signal("-STOP"), "cannot stop the backend {pid}");
    // Not synchronisation: the connection must have been idle for longer than the one second
    // after which a checkout pings it, and only time makes it so.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let result = pg.ping().await;
    let waited = started.elapsed();
    signal("-CONT");
    result.unwrap();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A new backend serves; the stopped one, resumed, finds its socket closed and exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = backends(&db.admin, &app).await;
        assert!(now.iter().any(|p| *p != pid), "{now:?}");
        if !now.contains(&pid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old backend lingers: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn a_full_pool_fails_within_the_wait_timeout() {
    let db = support::fresh().await;
    let app = db.schema().to_owned();
    let pg = Postgres::new(&PgConfig {
        url: url_named(&app),
        pool_size: 1,
        wait_timeout: Duration::from_millis(300),
        query_timeout: std::time::Duration::from_secs(5),
        ..config(Some(db.schema()))
    })
    .unwrap();
    let w = Window::new(5, time::Duration::minutes(1));
    let limits = pg.rate_limits();
    limits.hit(&key(1), w, t0()).await.unwrap();
    // The admin connection holds the key's row lock, so the next hit holds the pool's only
    // connection while it waits for it.
    db.admin
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM \"{}\".rate_limits FOR UPDATE",
            db.schema()
        ))
        .await
        .unwrap();
    let blocked = {
        let limits = limits.clone();
        tokio::spawn(async move { limits.hit(&key(1), w, t0()).await })
    };
    // Until the pool's only connection is waiting for that row lock.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = db
            .admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hit never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let e = pg.ping().await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(
        chain(&e).to_lowercase().contains("timeout"),
        "{}",
        chain(&e)
    );
    db.admin.batch_execute("COMMIT").await.unwrap();
    let d = blocked.await.unwrap().unwrap();
    assert_eq!(
        d.remaining, 3,
        "the waiting hit went through once the lock was released"
    );
    pg.ping().await.unwrap();
}

pub(crate) async fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts TCP connections and never says a word: neither the TLS request nor the startup
    // message gets an answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for mode in ["disable", "prefer", "require"] {
        let pg = Postgres::new(&PgConfig {
            url: format!("postgres://phaze:hunter2-secret@127.0.0.1:{port}/x?sslmode={mode}"),
            schema: None,
            ca_file: None,
            pool_size: 2,
            connect_timeout: Duration::from_millis(300),
            wait_timeout: Duration::from_millis(300),
            query_timeout: std::time::Duration::from_secs(5),
        })
        .unwrap();
        let started = Instant::now();
        let e = pg.ping().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{mode}");
        assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
        let e = pg.migrate().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{mode}");
        assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    }
    hold.abort();
}

pub(crate) async fn errors_and_debug_output_never_show_the_password() {
    // Nothing listens on port 1: the connection is refused.
    let config = PgConfig {
        url: "postgres://phaze:hunter2-secret@127.0.0.1:1/portal?sslmode=disable".into(),
        schema: Some("phaze".into()),
        ca_file: None,
        pool_size: 2,
        connect_timeout: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(1),
        query_timeout: std::time::Duration::from_secs(5),
    };
    assert!(!format!("{config:?}").contains("hunter2"));
    let pg = Postgres::new(&config).unwrap();
    assert!(!format!("{pg:?}").contains("hunter2"));
    for e in [
        pg.ping().await.unwrap_err(),
        pg.check_schema().await.unwrap_err(),
        pg.migrate().await.unwrap_err(),
    ] {
        let text = chain(&e);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("refused"), "says what happened: {text}");
    }
    let e = Postgres::new(&PgConfig {
        url: "postgres://phaze:hunter2-secret@db:notaport/portal".into(),
        ..config
    })
    .unwrap_err();
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
}

/// A row lock held by a frozen process (here: an open transaction that never ends) fails a hit on
/// that key within `query_timeout`, server-side, instead of hanging every request for the key.
pub(crate) async fn a_lock_held_by_a_frozen_process_fails_within_the_query_timeout() {
    let db = support::fresh().await;
    let pg = Postgres::new(&PgConfig {
        query_timeout: Duration::from_millis(300),
        ..config(Some(db.schema()))
    })
    .unwrap();
    let limits = pg.rate_limits();
    let window = Window::new(5, time::Duration::minutes(1));
    let k = key(7);
    assert!(limits.hit(&k, window, t0()).await.unwrap().allowed);
    // The "frozen process": another connection locks the key's row and never commits.
    db.admin
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM \"{}\".rate_limits FOR UPDATE",
            db.schema()
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let result = limits.hit(&k, window, t0()).await;
    let took = started.elapsed();
    assert!(result.is_err(), "a lock wait must fail, not wait");
    assert!(took < Duration::from_secs(3), "failed after {took:?}");
    db.admin.batch_execute("ROLLBACK").await.unwrap();
    // Lock released: the key works again, and the failed attempt recorded nothing.
    let d = limits.hit(&k, window, t0()).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3));
}
