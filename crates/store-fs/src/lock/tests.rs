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
