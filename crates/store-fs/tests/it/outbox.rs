//! The outbox writes one well-formed message per file, whatever the subject and body hold.

use phaze_auth::{Email, Mailer, OutgoingMail};
use phaze_store_fs::{FsError, FsOutbox};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::support::is_hex;

/// The single `.eml` file in `dir` (asserting there is nothing else) and its id.
fn only_message(dir: &Path) -> (String, Vec<u8>) {
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "one file, no temporary left: {names:?}");
    let id = names[0].strip_suffix(".eml").expect("named *.eml");
    assert!(is_hex(id, 32), "{id}");
    (id.to_owned(), fs::read(dir.join(&names[0])).unwrap())
}

/// Splits a message into unfolded header fields (lower-cased names, in order) and the body,
/// asserting the syntax of RFC 5322 on the way: CRLF line ends only, ASCII headers, every header
/// line a `name: value` or a continuation.
fn parse(message: &[u8]) -> (Vec<(String, String)>, String) {
    let text = std::str::from_utf8(message).unwrap();
    for (i, b) in message.iter().enumerate() {
        if *b == b'\n' {
            assert!(i > 0 && message[i - 1] == b'\r', "bare LF at {i}");
        }
        if *b == b'\r' {
            assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a blank line ends the header");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        assert!(line.is_ascii() && !line.is_empty(), "{line:?}");
        assert!(line.len() <= 998, "line too long");
        if line.starts_with([' ', '\t']) {
            fields
                .last_mut()
                .expect("no continuation first")
                .1
                .push_str(line);
            continue;
        }
        let (name, value) = line.split_once(':').expect("a header field");
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{name:?}"
        );
        fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    (fields, body.to_owned())
}

pub(crate) async fn hostile_subject_and_body_make_one_well_formed_message() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = FsOutbox::open(dir.path().join("outbox"), "Phaze <no-reply@example.com>").unwrap();
    let mail = OutgoingMail {
        to: Email::parse("Ada@Example.com").unwrap(),
        subject: "Welcome\r\nBcc: victim@evil.example\r\nX-Injected: yes\n\nbody? ünïcødé 🦀\0"
            .into(),
        body:
            "<script>alert(1)</script>\r\n.\r\nBcc: also@evil.example\n\nFrom: spoof@evil.example\n"
                .into(),
    };
    outbox.send(&mail).await.unwrap();
    let (id, message) = only_message(&dir.path().join("outbox"));
    let (fields, body) = parse(&message);

    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &fields {
        *count.entry(name.as_str()).or_default() += 1;
    }
    let allowed = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    ];
    for (name, n) in &count {
        assert!(
            allowed.contains(name),
            "unexpected header {name}: {fields:?}"
        );
        assert_eq!(*n, 1, "{name} appears {n} times");
    }
    for required in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "content-type",
    ] {
        assert!(count.contains_key(required), "missing {required}");
    }
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.as_str();
    assert_eq!(field("from"), "Phaze <no-reply@example.com>");
    assert!(field("to").contains("ada@example.com"), "{}", field("to"));
    assert_eq!(field("message-id"), format!("<{id}@example.com>"));
    assert_eq!(
        field("content-type").to_ascii_lowercase(),
        "text/plain; charset=utf-8"
    );
    // The non-ASCII part is an RFC 2047 encoded word; the line breaks went nowhere.
    let subject = field("subject");
    assert!(subject.starts_with("Welcome"), "{subject}");
    assert!(subject.contains("=?utf-8?"), "{subject}");
    // The body is data: the script is carried verbatim, its "headers" stay below the blank line.
    assert!(body.contains("<script>alert(1)</script>"), "{body}");
    assert!(body.contains("From: spoof@evil.example"), "{body}");
}

pub(crate) async fn every_message_gets_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = FsOutbox::open(dir.path(), "no-reply@example.com").unwrap();
    let mail = OutgoingMail {
        to: Email::parse("ada@example.com").unwrap(),
        subject: "Verify your address".into(),
        body: "Grüße: https://portal.example/verify?t=abc".into(),
    };
    for _ in 0..3 {
        outbox.send(&mail).await.unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3);
    for name in names {
        let (fields, _) = parse(&fs::read(dir.path().join(name)).unwrap());
        let encoding = fields
            .iter()
            .find(|(n, _)| n == "content-transfer-encoding")
            .unwrap();
        assert_ne!(
            encoding.1, "8bit",
            "non-ASCII bodies are encoded for 7-bit transport"
        );
    }
}

pub(crate) fn an_invalid_sender_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    for from in [
        "",
        "not an address",
        "a@example.com\r\nBcc: b@example.com",
        "<@>",
    ] {
        assert!(
            matches!(
                FsOutbox::open(dir.path(), from),
                Err(FsError::InvalidFrom(_))
            ),
            "{from:?}"
        );
    }
}

pub(crate) async fn the_portals_default_sender_works() {
    // `mail.from` defaults to this in the portal's settings; a refusal would stop it starting.
    let dir = tempfile::tempdir().unwrap();
    let outbox = FsOutbox::open(dir.path(), "Phaze <no-reply@localhost>").unwrap();
    let mail = OutgoingMail {
        to: Email::parse("ada@example.com").unwrap(),
        subject: "Hi".into(),
        body: "Hello".into(),
    };
    outbox.send(&mail).await.unwrap();
    let (id, message) = only_message(dir.path());
    let (fields, _) = parse(&message);
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(field("from"), "Phaze <no-reply@localhost>");
    assert_eq!(field("message-id"), format!("<{id}@localhost>"));
}
