//! The command runner against real programs: no shell, an allow-list, an empty environment, a
//! timeout that kills the whole process group, an output cap.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_sanitize::{Argument, CommandError, CommandPolicy, CommandRunner, Flag};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A test-only argument type: the tests' hostile strings, passed as one `argv` entry each.
struct Text(String);

impl Argument for Text {
    fn as_arg(&self) -> &OsStr {
        OsStr::new(&self.0)
    }
}

fn which(name: &str) -> PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found"))
}

fn runner(allowed: &[&str], timeout_ms: u64, max_output: usize) -> CommandRunner {
    CommandRunner::new(CommandPolicy {
        allowed: allowed.iter().map(|p| which(p)).collect(),
        env: vec![("LANG".into(), "C".into())],
        timeout: Duration::from_millis(timeout_ms),
        max_output,
    })
    .unwrap()
}

#[test]
fn arguments_reach_the_program_whole_and_no_shell_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let hostile = format!(
        "$(touch {0}); `touch {0}` | touch {0} && touch {0}\n",
        marker.display()
    );
    let r = runner(&["echo"], 5000, 4096);
    let out = r
        .run(&which("echo"), &[&Flag("-n"), &Text(hostile.clone())])
        .unwrap();
    assert_eq!(out.stdout, hostile.as_bytes());
    assert!(!marker.exists(), "nothing was executed");
}

#[test]
fn only_allowed_programs_by_absolute_path_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("created");
    let r = runner(&["echo"], 5000, 4096);
    let touch = which("touch");
    let e = r
        .run(&touch, &[&Text(marker.display().to_string())])
        .unwrap_err();
    assert!(matches!(e, CommandError::NotAllowed(_)), "{e}");
    assert!(!marker.exists());
    // The same program by a relative name or another spelling is not on the list either.
    assert!(matches!(
        r.run(Path::new("echo"), &[]),
        Err(CommandError::NotAllowed(_))
    ));
    let echo = which("echo");
    let bin = echo.parent().unwrap();
    let dotted = bin.join("..").join(bin.file_name().unwrap()).join("echo");
    assert!(dotted.exists());
    assert!(matches!(
        r.run(&dotted, &[]),
        Err(CommandError::NotAllowed(_))
    ));
    // A relative allow-list entry is refused when the runner is made.
    let e = CommandRunner::new(CommandPolicy {
        allowed: vec![PathBuf::from("wg")],
        env: Vec::new(),
        timeout: Duration::from_secs(1),
        max_output: 1,
    })
    .unwrap_err();
    assert!(matches!(e, CommandError::RelativeProgram(_)));
}

#[test]
fn the_environment_is_only_what_is_configured() {
    std::env::set_var("PHAZE_SECRET_FOR_TEST", "leak");
    let r = runner(&["env"], 5000, 4096);
    let out = r.run(&which("env"), &[]).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "LANG=C\n");
}

#[test]
fn a_run_past_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild");
    let r = runner(&["sh"], 300, 4096);
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let started = Instant::now();
    let e = r
        .run(&which("sh"), &[&Flag("-c"), &Text(script)])
        .unwrap_err();
    assert!(matches!(e, CommandError::TimedOut(_)), "{e}");
    // Killed at its 300 ms timeout, not left to sleep its 30 s: a hang bound, not a speed figure.
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(2);
    while proc.exists() && Instant::now() < deadline {
        // A killed process lingers as a zombie until its parent (init) reaps it.
        let state = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
        if state.contains(" Z ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    assert!(
        !proc.exists() || state.contains(" Z "),
        "the grandchild sleep was killed: {state}"
    );
}

#[test]
fn output_past_the_cap_kills_the_run_and_a_failure_says_so() {
    let r = runner(&["yes", "ls"], 5000, 64 * 1024);
    let e = r.run(&which("yes"), &[]).unwrap_err();
    assert!(matches!(e, CommandError::OutputTooLarge(_)), "{e}");
    let e = r
        .run(&which("ls"), &[&Text("/no/such/path".into())])
        .unwrap_err();
    match e {
        CommandError::Failed { status, stderr, .. } => {
            assert!(!status.success());
            assert!(!stderr.is_empty());
        }
        other => panic!("{other}"),
    }
}
