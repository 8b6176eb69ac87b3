//! The on-disk layout, crash leftovers and corrupt files.

use phaze_auth::{AccountStore, StoreError as AuthError, TokenStore};
use phaze_sessions::{SessionStore, StoreError};
use phaze_store_fs::{FsAccounts, FsSessions, FsTokens};
use phaze_testkit::accounts::{account, sealed, sealer};
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::support::{files, sha256_hex};

pub(crate) async fn every_record_is_one_file_named_by_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (sessions, accounts, tokens) = (
        FsSessions::open(dir.path()).unwrap(),
        FsAccounts::open(dir.path()).unwrap(),
        FsTokens::open(dir.path()).unwrap(),
    );
    let s = record(1, "user-1");
    let a = account("ada@example.com");
    let sealed = sealer().seal(&a);
    let t = token(3);
    sessions.insert(&s).await.unwrap();
    accounts.insert(&sealed).await.unwrap();
    tokens.issue(&t).await.unwrap();

    let key = s.key.to_hex();
    let id_name = sha256_hex(a.id.to_string().as_bytes());
    let email_name = sealer().index(&a.email).to_hex();
    // A token's subject file names its live token, under a hash of purpose and subject.
    let subject_name = sha256_hex(format!("email_verification\0user:{}", t.user_id).as_bytes());
    let mut expected = vec![
        format!("accounts/emails/{email_name}"),
        format!("accounts/records/{id_name}"),
        "owner.lock".to_owned(),
        format!("sessions/locks/{}.lock", &key[..2]),
        format!("sessions/records/{key}"),
        format!("sessions/users/{}/{key}", sha256_hex(b"user-1")),
        format!("tokens/{}", t.hash.to_hex()),
        format!("tokens/locks/{}.lock", &subject_name[..2]),
        format!("tokens/subjects/{subject_name}"),
    ];
    expected.sort();
    assert_eq!(
        files(dir.path()),
        expected,
        "no temporary file, no table file, nothing else"
    );
    // The index holds the owner's id; the marker is empty; the account is its sealed record as
    // JSON, with neither the address nor the name in it.
    let index = fs::read_to_string(dir.path().join("accounts/emails").join(&email_name)).unwrap();
    assert_eq!(index, a.id.to_string());
    let marker = dir
        .path()
        .join("sessions/users")
        .join(sha256_hex(b"user-1"))
        .join(&key);
    assert_eq!(fs::metadata(marker).unwrap().len(), 0);
    let json = fs::read(dir.path().join("accounts/records").join(&id_name)).unwrap();
    assert_eq!(
        serde_json::from_slice::<phaze_auth::AccountRecord>(&json).unwrap(),
        sealed
    );
    let text = String::from_utf8_lossy(&json);
    assert!(
        !text.contains("ada@example.com") && !text.contains("Ada"),
        "{text}"
    );

    // Consuming leaves no claimed copy behind; purging and removing leave no records.
    assert!(tokens
        .consume(&t.hash, t.purpose, t0())
        .await
        .unwrap()
        .is_some());
    assert!(sessions.remove(&s.key).await.unwrap());
    let left = files(dir.path());
    assert!(
        left.iter()
            .all(|f| f.starts_with("accounts/") || f.ends_with(".lock")),
        "{left:?}"
    );
}

pub(crate) async fn readers_never_see_half_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsSessions::open(dir.path()).unwrap());
    let mut s = record(1, "alice");
    s.sealed = vec![0; 256 * 1024];
    store.insert(&s).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, done, key) = (store.clone(), done.clone(), s.key);
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let got = store
                        .get(&key)
                        .await
                        .unwrap()
                        .expect("never missing mid-update");
                    let first = got.sealed[0];
                    assert_eq!(got.sealed.len(), 256 * 1024 + usize::from(first));
                    assert!(got.sealed.iter().all(|&b| b == first), "a torn record");
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    for n in 1..=60u8 {
        // Sizes differ too, so a reader of a half-written file would see a wrong length.
        s.sealed = vec![n; 256 * 1024 + usize::from(n)];
        assert!(store.update(&s).await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
}

pub(crate) async fn a_marker_without_its_record_is_skipped_and_cleaned() {
    // What a process that crashed between writing the marker and the record leaves behind.
    let dir = tempfile::tempdir().unwrap();
    let store = FsSessions::open(dir.path()).unwrap();
    let live = record(1, "alice");
    store.insert(&live).await.unwrap();
    let user_dir = dir.path().join("sessions/users").join(sha256_hex(b"alice"));
    let dangling = user_dir.join(record(2, "alice").key.to_hex());
    fs::write(&dangling, b"").unwrap();
    assert_eq!(store.list_user("alice").await.unwrap(), vec![live.clone()]);
    assert!(!dangling.exists(), "list_user removes the dangling marker");
    fs::write(&dangling, b"").unwrap();
    assert_eq!(
        store.remove_user("alice", Some(&live.key)).await.unwrap(),
        0
    );
    assert!(
        !dangling.exists(),
        "remove_user removes it too, counting only records"
    );
}

pub(crate) async fn a_corrupt_record_is_an_error_until_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsSessions::open(dir.path()).unwrap();
    let s = record(1, "alice");
    store.insert(&s).await.unwrap();
    let path = dir.path().join("sessions/records").join(s.key.to_hex());
    fs::write(&path, b"PZS1 not really").unwrap();
    // Fail closed: "store broken" must not read as "no session".
    assert!(matches!(
        store.get(&s.key).await,
        Err(StoreError::Backend(_))
    ));
    // A record whose content names another key is refused the same way.
    let other = record(2, "alice");
    store.insert(&other).await.unwrap();
    fs::copy(
        dir.path().join("sessions/records").join(other.key.to_hex()),
        &path,
    )
    .unwrap();
    assert!(matches!(
        store.get(&s.key).await,
        Err(StoreError::Backend(_))
    ));
    fs::write(&path, b"garbage").unwrap();
    assert_eq!(
        store.purge_expired(t0()).await.unwrap(),
        1,
        "an unreadable record is dead"
    );
    assert_eq!(store.get(&s.key).await.unwrap(), None);
    assert_eq!(store.get(&other.key).await.unwrap(), Some(other));
}

pub(crate) async fn purge_sweeps_old_temporary_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsSessions::open(dir.path()).unwrap();
    let tokens = FsTokens::open(dir.path()).unwrap();
    let records = dir.path().join("sessions/records");
    let half_written = records.join(".0123456789abcdef0123456789abcdef.tmp");
    fs::write(&half_written, b"PZS1\x00").unwrap();
    let claimed = dir
        .path()
        .join("tokens/.0123456789abcdef0123456789abcdef.claim");
    fs::write(&claimed, b"{").unwrap();
    // Leftovers are invisible to readers.
    assert!(store.list_user("alice").await.unwrap().is_empty());
    let written = OffsetDateTime::from(fs::metadata(&half_written).unwrap().modified().unwrap());
    assert_eq!(store.purge_expired(written).await.unwrap(), 0);
    assert!(
        half_written.exists(),
        "a fresh temporary file may be a write in progress"
    );
    assert_eq!(
        store
            .purge_expired(written + Duration::hours(2))
            .await
            .unwrap(),
        0
    );
    assert!(
        !half_written.exists(),
        "an hour-old one is a crash leftover"
    );
    assert_eq!(
        tokens
            .purge_expired(written + Duration::hours(2))
            .await
            .unwrap(),
        0
    );
    assert!(!claimed.exists());
}

pub(crate) async fn hand_edited_email_index_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(Arc::new(FsAccounts::open(dir.path()).unwrap()));
    let (a, b) = (account("ada@example.com"), account("bob@example.com"));
    store.insert(&a).await.unwrap();
    store.insert(&b).await.unwrap();
    // Point ada's index entry at bob: logging in as ada must never yield bob's account.
    let entry = dir
        .path()
        .join("accounts/emails")
        .join(sealer().index(&a.email).to_hex());
    fs::write(&entry, b.id.to_string()).unwrap();
    assert!(matches!(
        store.by_email(&a.email).await,
        Err(AuthError::Backend(_))
    ));
    fs::write(&entry, b"not a uuid").unwrap();
    assert!(matches!(
        store.by_email(&a.email).await,
        Err(AuthError::Backend(_))
    ));
}

pub(crate) async fn open_refuses_a_file_where_a_directory_belongs() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("tokens"), b"").unwrap();
    assert!(matches!(
        FsTokens::open(dir.path()),
        Err(phaze_store_fs::FsError::Dir { .. })
    ));
}

#[cfg(unix)]
pub(crate) async fn files_are_0600_and_directories_0700() {
    use phaze_auth::{Email, Mailer, OutgoingMail};
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let sessions = FsSessions::open(&data).unwrap();
    sessions.insert(&record(1, "alice")).await.unwrap();
    FsAccounts::open(&data)
        .unwrap()
        .insert(&sealer().seal(&account("ada@example.com")))
        .await
        .unwrap();
    FsTokens::open(&data)
        .unwrap()
        .issue(&token(1))
        .await
        .unwrap();
    let mail = OutgoingMail {
        to: Email::parse("ada@example.com").unwrap(),
        subject: "Hi".into(),
        body: "Hello".into(),
    };
    let outbox =
        phaze_store_fs::FsOutbox::open(data.join("outbox"), "no-reply@example.com").unwrap();
    outbox.send(&mail).await.unwrap();
    let mut seen = (0, 0);
    for path in std::iter::once(data.clone()).chain(crate::support::walk(&data)) {
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            seen.0 += 1;
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            seen.1 += 1;
        }
    }
    // data, sessions/{,records,users,users/x,locks}, accounts/{,records,emails,locks},
    // tokens/{,subjects,locks}, outbox
    assert_eq!(seen.0, 14);
    // session, marker, lock, account, email index, token, token subject, token lock, message,
    // owner lock
    assert_eq!(seen.1, 10);
}

/// Writes `a` into `accounts` as a version from before sealing did: the account as JSON, and its
/// index entry named by the SHA-256 of the address.
fn write_clear(accounts: &std::path::Path, a: &phaze_auth::Account) {
    let record = sha256_hex(a.id.to_string().as_bytes());
    fs::write(
        accounts.join("records").join(record),
        serde_json::to_vec(a).unwrap(),
    )
    .unwrap();
    let entry = sha256_hex(a.email.as_str().as_bytes());
    fs::write(accounts.join("emails").join(entry), a.id.to_string()).unwrap();
}

/// Accounts a version from before sealing wrote in the clear (record and `sha256(address)`
/// index entry) are sealed by the start-up step, once, even with two processes at it: found
/// again by address afterwards, no file left holding an address or a name, and a marker that
/// makes later starts skip the scan.
pub(crate) async fn accounts_stored_in_the_clear_are_sealed_once_and_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let raw = FsAccounts::open(dir.path()).unwrap();
    let (mut ada, mut bob) = (account("ada@example.com"), account("bob@example.com"));
    ada.display_name = phaze_auth::DisplayName::parse("Zyxwv <b>Qutsr</b>").unwrap();
    bob.two_factor = Some(phaze_auth::TwoFactor {
        sealed_secret: vec![7; 60],
        enabled_at: Some(t0()),
        recovery_codes: Vec::new(),
    });
    let accounts = dir.path().join("accounts");
    for a in [&ada, &bob] {
        write_clear(&accounts, a);
    }
    let carol = account("carol@example.com");
    let one = sealed(Arc::new(raw));
    one.insert(&carol).await.unwrap();
    assert_eq!(one.by_email(&ada.email).await.unwrap(), None, "not yet");
    assert!(
        one.by_id(&ada.id).await.is_err(),
        "a record in the clear is not served as if sealed"
    );

    let two = sealed(Arc::new(FsAccounts::open(dir.path()).unwrap()));
    let (a, b) = tokio::join!(one.seal_clear(), two.seal_clear());
    assert_eq!(a.unwrap() + b.unwrap(), 2, "each account sealed once");
    for x in [&ada, &bob, &carol] {
        assert_eq!(one.by_email(&x.email).await.unwrap().as_ref(), Some(x));
        assert_eq!(two.by_id(&x.id).await.unwrap().as_ref(), Some(x));
    }
    let left = files(&accounts);
    assert!(left.contains(&"sealed".to_owned()), "{left:?}");
    assert_eq!(
        left.iter().filter(|f| f.starts_with("emails/")).count(),
        3,
        "the old index entries are gone: {left:?}"
    );
    for name in &left {
        let text = String::from_utf8_lossy(&fs::read(accounts.join(name)).unwrap()).into_owned();
        for trace in ["ada@example.com", "bob@example.com", "Zyxwv", "Qutsr"] {
            assert!(!text.contains(trace), "{trace} in {name}");
        }
    }
    assert_eq!(one.seal_clear().await.unwrap(), 0);

    // A record that is neither form fails the step, rather than being skipped in the clear.
    let dir = tempfile::tempdir().unwrap();
    let raw = FsAccounts::open(dir.path()).unwrap();
    fs::write(
        dir.path()
            .join("accounts/records")
            .join(sha256_hex(b"nobody")),
        b"{\"email\": \"eve@example.com\"",
    )
    .unwrap();
    assert!(sealed(Arc::new(raw)).seal_clear().await.is_err());
}

/// More accounts in the clear than one batch, two processes sealing them at once: each goes on
/// until none is left (neither starts serving early), every account is sealed exactly once, and
/// one whose address was registered again meanwhile is left in the clear without failing the
/// start.
pub(crate) async fn the_start_up_step_seals_every_batch_beside_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let raw = FsAccounts::open(dir.path()).unwrap();
    let accounts = dir.path().join("accounts");
    let people: Vec<_> = (0..450)
        .map(|n| account(&format!("p{n}@example.com")))
        .collect();
    for a in &people {
        write_clear(&accounts, a);
    }
    // Registered again, sealed, while its older account was still in the clear.
    let twin = account("p7@example.com");
    let one = sealed(Arc::new(raw));
    fs::remove_file(accounts.join("emails").join(sha256_hex(b"p7@example.com"))).unwrap();
    one.insert(&twin).await.unwrap();
    let two = sealed(Arc::new(FsAccounts::open(dir.path()).unwrap()));
    let (a, b) = tokio::join!(one.seal_clear(), two.seal_clear());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a + b,
        449,
        "every account but the twin's older one, once: {a} + {b}"
    );
    for p in people.iter().filter(|p| p.id != people[7].id) {
        assert_eq!(two.by_email(&p.email).await.unwrap().as_ref(), Some(p));
    }
    assert_eq!(one.by_email(&twin.email).await.unwrap(), Some(twin));
    assert_eq!(
        one.seal_clear().await.unwrap(),
        0,
        "the older one stays for an operator"
    );
}
