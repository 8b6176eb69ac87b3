//! `SafeDir`: names built from data cannot leave the directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_sanitize::SafeDir;

#[test]
fn names_cannot_leave_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    std::fs::write(root.path().join("secret"), b"outside").unwrap();
    assert!(
        SafeDir::open(&base).is_err(),
        "open needs an existing directory"
    );
    let dir = SafeDir::create(&base).unwrap();
    dir.replace("ok.txt", b"inside").unwrap();
    assert_eq!(dir.read("ok.txt").unwrap().as_deref(), Some(&b"inside"[..]));
    assert_eq!(dir.read("missing").unwrap(), None);

    let absolute = root.path().join("secret").display().to_string();
    for escape in ["../secret", "../../etc/passwd", absolute.as_str()] {
        assert!(dir.read(escape).is_err(), "{escape}");
        assert!(dir.replace(escape, b"x").is_err(), "{escape}");
        assert!(dir.remove(escape).is_err(), "{escape}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.path().join("secret"), base.join("link")).unwrap();
        assert!(
            dir.read("link").is_err(),
            "a symlink out of the directory is refused"
        );
        std::os::unix::fs::symlink("ok.txt", base.join("inner")).unwrap();
        assert_eq!(
            dir.read("inner").unwrap().as_deref(),
            Some(&b"inside"[..]),
            "one inside is fine"
        );
    }
    assert_eq!(
        std::fs::read(root.path().join("secret")).unwrap(),
        b"outside"
    );
    assert!(dir.remove("ok.txt").unwrap());
    assert!(!dir.remove("ok.txt").unwrap());
    assert!(!dir.names().unwrap().iter().any(|n| n.ends_with(".tmp")));
}
