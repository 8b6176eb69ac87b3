//! Inputs that look like paths never become paths.

use phaze_auth::{Email, MailError, Mailer, OutgoingMail, TokenHash, TokenStore};
use phaze_sessions::SessionStore;
use phaze_store_fs::{FsAccounts, FsOutbox, FsSessions, FsTokens};
use phaze_testkit::accounts::account;
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use std::fs;
use std::path::Path;

use crate::support::{is_hex, walk};

fn hostile_user_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "../../x",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "",
        " ",
        "a/b",
        "a/../../b",
        "..\\..\\x",
        "C:\\Windows\\win.ini",
        "\\\\server\\share",
        "con",
        "NUL",
        "aux.txt",
        "*",
        "?",
        "~",
        "$HOME",
        "x\0y",
        "line\nbreak\r",
        "\u{202e}txt.exe",
        "ünïcødé/☃/🦀",
        "%2e%2e%2f%2e%2e",
        ".lock",
        "00.lock",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    ids.push("a".repeat(10_000));
    ids.push("../".repeat(2_000));
    ids
}

const HOSTILE_EMAILS: &[&str] = &[
    "a/b@example.com",
    "a/b/c/d@example.com",
    "x/.y@example.com",
    "%2e%2e%2f@example.com",
    "~root@example.com",
    "con@example.com",
    "!#$%&'*+-/=?^_`{|}~@example.com",
    "ünï/cødé@example.com",
    "x@a/b.example.com",
    "x@example.com/..",
];

pub(crate) async fn hostile_inputs_stay_inside_the_data_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");

    let sessions = FsSessions::open(&data).unwrap();
    let users = hostile_user_ids();
    for (n, user) in users.iter().enumerate() {
        let s = record(u8::try_from(n).unwrap(), user);
        sessions.insert(&s).await.unwrap();
        assert_eq!(sessions.get(&s.key).await.unwrap(), Some(s.clone()));
        assert_eq!(
            sessions.list_user(user).await.unwrap(),
            vec![s.clone()],
            "{user:?}"
        );
        assert!(sessions.update(&s).await.unwrap());
    }
    for (n, user) in users.iter().enumerate().step_by(2) {
        assert_eq!(
            sessions.remove_user(user, None).await.unwrap(),
            1,
            "{user:?}"
        );
        assert!(sessions
            .get(&record(u8::try_from(n).unwrap(), user).key)
            .await
            .unwrap()
            .is_none());
    }
    assert!(sessions.list_user("../..").await.unwrap().is_empty());

    let accounts =
        phaze_testkit::accounts::sealed(std::sync::Arc::new(FsAccounts::open(&data).unwrap()));
    let tokens = FsTokens::open(&data).unwrap();
    let outbox = FsOutbox::open(data.join("outbox"), "Phaze <no-reply@example.com>").unwrap();
    let mut valid = 0;
    for (n, raw) in HOSTILE_EMAILS.iter().enumerate() {
        let Some(email) = Email::parse(raw) else {
            continue;
        };
        valid += 1;
        let a = account(email.as_str());
        accounts.insert(&a).await.unwrap();
        assert_eq!(
            accounts.by_email(&email).await.unwrap(),
            Some(a.clone()),
            "{raw}"
        );
        accounts.update(&a).await.unwrap();
        let mail = OutgoingMail {
            to: email.clone(),
            subject: format!("../../{raw}\r\nBcc: {raw}"),
            body: format!("{raw}\n../../etc/passwd"),
        };
        // lettre may refuse an address the portal accepts; it must never be a write failure.
        match outbox.send(&mail).await {
            Ok(()) | Err(MailError::Build(_)) => {}
            Err(e) => panic!("{raw}: {e:?}"),
        }
        let t = token(u8::try_from(n).unwrap());
        tokens.issue(&t).await.unwrap();
    }
    assert!(
        valid >= 8,
        "the list should exercise the stores, not Email::parse"
    );
    // Hashes are bytes and only ever hexed, even bytes that spell a path.
    for hash in [
        TokenHash([0xff; 32]),
        TokenHash(*b"../../../../../../../../../../.."),
    ] {
        assert!(tokens
            .consume(&hash, token(0).purpose, t0())
            .await
            .unwrap()
            .is_none());
    }

    check_tree(root.path(), &data);
}

/// Nothing outside `data`, no symlinks, and every name one the store writes.
fn check_tree(root: &Path, data: &Path) {
    let top: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        top,
        vec![std::ffi::OsString::from("data")],
        "nothing created beside the data dir"
    );
    let canonical = data.canonicalize().unwrap();
    const DIRS: &[&str] = &[
        "sessions", "records", "users", "locks", "accounts", "emails", "tokens", "subjects",
        "outbox",
    ];
    let mut files = 0;
    for path in walk(data) {
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(!meta.file_type().is_symlink(), "{}", path.display());
        assert!(
            path.canonicalize().unwrap().starts_with(&canonical),
            "{}",
            path.display()
        );
        let name = path.file_name().unwrap().to_str().unwrap();
        if meta.is_dir() {
            assert!(
                DIRS.contains(&name) || is_hex(name, 64),
                "directory {}",
                path.display()
            );
        } else {
            files += 1;
            let ok = is_hex(name, 64)
                || name == "owner.lock"
                || name.strip_suffix(".lock").is_some_and(|s| is_hex(s, 2))
                || name.strip_suffix(".eml").is_some_and(|s| is_hex(s, 32));
            assert!(ok, "file {}", path.display());
        }
    }
    assert!(
        files > 50,
        "the test wrote what it meant to ({files} files)"
    );
}
