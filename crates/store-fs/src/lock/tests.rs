use super::*;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn names_map_to_at_most_256_shard_files() {
    let locks = ShardLocks::new(Path::new("/l"));
    assert_eq!(locks.path_for("ab12"), Path::new("/l/ab.lock"));
    assert_eq!(locks.path_for("ab"), Path::new("/l/ab.lock"));
    // Only hex names are ever passed; anything else still stays inside the directory.
    assert_eq!(locks.path_for("../x"), Path::new("/l/00.lock"));
    assert_eq!(locks.path_for(""), Path::new("/l/00.lock"));
}

#[test]
fn a_shard_excludes_other_threads_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let locks = std::sync::Arc::new(ShardLocks::new(dir.path()));
    let held = locks.lock("ab01").unwrap();
    let (tx, rx) = mpsc::channel();
    let other = locks.clone();
    let waiter = std::thread::spawn(move || {
        let _g = other.lock("ab02").unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "same shard must wait"
    );
    // A different shard is free meanwhile.
    drop(locks.lock("cd01").unwrap());
    drop(held);
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    waiter.join().unwrap();
}

#[test]
fn a_lock_held_too_long_is_a_timeout_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let holder = ShardLocks::new(dir.path());
    let held = holder.lock("cd01").unwrap();
    let impatient = ShardLocks::new(dir.path()).waiting(Duration::from_millis(150));
    let started = std::time::Instant::now();
    let e = impatient.lock("cd02").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(held);
    impatient.lock("cd03").unwrap();
}

#[test]
fn a_timeout_is_reported_once_as_a_lock_timeout_event_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let owner = DataDir::open(dir.path(), crate::Sharing::Exclusive).unwrap();
    let recorder = std::sync::Arc::new(phaze_events::Recorder::default());
    owner.report_to(phaze_events::Events::new([
        recorder.clone() as std::sync::Arc<dyn phaze_events::EventSink>
    ]));
    let locks_dir = dir.path().join("l");
    std::fs::create_dir(&locks_dir).unwrap();
    let holder = ShardLocks::new(&locks_dir);
    let held = holder.lock("ef01").unwrap();
    let impatient = ShardLocks::new(&locks_dir)
        .reporting_to(&owner)
        .waiting(Duration::from_millis(50));
    impatient.lock("ef02").unwrap_err();
    let events = recorder.events();
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        phaze_events::SecurityEvent::LockTimeout { file, waited_ms } => {
            assert!(file.ends_with("ef.lock"), "{file}");
            assert_eq!(*waited_ms, 50);
        }
        other => panic!("{other:?}"),
    }
    // A lock obtained reports nothing.
    drop(held);
    impatient.lock("ef03").unwrap();
    assert_eq!(recorder.events().len(), 1);
}
