use super::*;
use std::fs::File;
use std::time::UNIX_EPOCH;

fn listing(dir: &Path) -> Vec<String> {
    let mut names = names(dir).unwrap();
    names.sort();
    names
}

#[test]
fn create_is_create_if_absent_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    assert!(create(dir.path(), "a", b"first").unwrap());
    assert!(
        !create(dir.path(), "a", b"second").unwrap(),
        "an existing name is never replaced"
    );
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"first");
    assert_eq!(listing(dir.path()), vec!["a"]);
}

#[test]
fn replace_overwrites_whole_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    replace(dir.path(), "a", b"first version").unwrap();
    replace(dir.path(), "a", b"2nd").unwrap();
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"2nd");
    assert_eq!(listing(dir.path()), vec!["a"]);
}

#[test]
fn remove_and_read_report_absence() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(&dir.path().join("a")).unwrap(), None);
    assert!(!remove(dir.path(), "a").unwrap());
    create(dir.path(), "a", b"x").unwrap();
    assert!(remove(dir.path(), "a").unwrap());
    assert_eq!(
        names(&dir.path().join("missing")).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn private_names_are_hidden_and_never_records_or_mail() {
    let name = private_name(TEMP_SUFFIX);
    assert!(name.starts_with('.') && name.ends_with(".tmp"), "{name}");
    assert!(!crate::is_record_name(&name) && !name.ends_with(".eml"));
    assert_ne!(private_name(TEMP_SUFFIX), name);
}

#[test]
fn sweep_removes_only_old_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let make = |name: &str, age: u64| {
        let file = File::create(dir.path().join(name)).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    };
    make(".old.tmp", 7200);
    make(".old.claim", 7200);
    make(".young.tmp", 60);
    make("old-record", 7200);
    sweep_stale(dir.path(), now);
    assert_eq!(listing(dir.path()), vec![".young.tmp", "old-record"]);
}

#[cfg(unix)]
#[test]
fn files_and_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    create_dir_private(&nested).unwrap();
    create(&nested, "c", b"x").unwrap();
    replace(&nested, "d", b"x").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&nested.join("c")), 0o600);
    assert_eq!(mode(&nested.join("d")), 0o600);
}
