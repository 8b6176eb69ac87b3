//! Running a program without a shell.
//!
//! The review's runner matched command lines against a regular expression and let
//! `python3 -c …` through. Here there is no command line: a program is named by its absolute path
//! and must be on the runner's allow-list; each argument is a value of a type that validated it
//! ([`Argument`]: a key, an interface name, an address; fixed flags are `&'static str`), handed to
//! the program as one `argv` entry that no shell ever reads. The environment is emptied (then
//! only what is configured), standard input is closed, the run is killed with its whole process
//! group when it outlives its timeout or writes more than its output cap, and a refused program
//! is logged as the security event `command_refused`.

use phaze_events::{Events, SecurityEvent};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One `argv` entry, from a type that checked it. Implement it for validated newtypes only; never
/// for `String`.
pub trait Argument {
    /// The entry as the program receives it.
    fn as_arg(&self) -> &OsStr;
}

/// A fixed flag or word, written in the code (`Flag("peer")`): never built from input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub &'static str);

impl Argument for Flag {
    fn as_arg(&self) -> &OsStr {
        OsStr::new(self.0)
    }
}

/// What a [`CommandRunner`] may run, and how.
#[derive(Clone, Debug)]
pub struct CommandPolicy {
    /// Programs that may run, by absolute path.
    pub allowed: Vec<PathBuf>,
    /// The whole environment of a run.
    pub env: Vec<(String, String)>,
    /// A run still going after this is killed, with its process group.
    pub timeout: Duration,
    /// Bytes of standard output (and, separately, of standard error) a run may write.
    pub max_output: usize,
}

/// What a run printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// An allow-list entry is not an absolute path.
    #[error("allowed programs must be absolute paths: {0}")]
    RelativeProgram(PathBuf),
    /// The program is not on the allow-list: nothing ran.
    #[error("program not allowed: {0}")]
    NotAllowed(PathBuf),
    /// It could not be started.
    #[error("could not start {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran past the timeout and was killed.
    #[error("{0} timed out and was killed")]
    TimedOut(PathBuf),
    /// It wrote more than the cap and was killed.
    #[error("{0} wrote too much output and was killed")]
    OutputTooLarge(PathBuf),
    /// It exited unsuccessfully.
    #[error("{program} failed ({status})")]
    Failed {
        /// The program.
        program: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// What it said on standard error (capped).
        stderr: Vec<u8>,
    },
}

/// Runs allow-listed programs; see the module documentation.
#[derive(Clone, Debug)]
pub struct CommandRunner {
    policy: CommandPolicy,
    events: Events,
}

impl CommandRunner {
    /// A runner under `policy`; every allowed program must be an absolute path.
    pub fn new(policy: CommandPolicy) -> Result<Self, CommandError> {
        if let Some(relative) = policy.allowed.iter().find(|p| !p.is_absolute()) {
            return Err(CommandError::RelativeProgram(relative.clone()));
        }
        Ok(Self {
            policy,
            events: Events::default(),
        })
    }

    /// Reports refused programs through `events` (the `command_refused` security event).
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Runs `program` with `args`, blocking until it ends (call it from a blocking thread).
    pub fn run(
        &self,
        program: &Path,
        args: &[&dyn Argument],
    ) -> Result<CommandOutput, CommandError> {
        if !program.is_absolute() || !self.policy.allowed.iter().any(|a| a == program) {
            self.events.emit(SecurityEvent::CommandRefused {
                program: program.display().to_string(),
            });
            return Err(CommandError::NotAllowed(program.to_owned()));
        }
        let mut command = Command::new(program);
        command
            .args(args.iter().map(|a| a.as_arg()))
            .env_clear()
            .envs(self.policy.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so a timeout ends whatever it started too.
            command.process_group(0);
        }
        let spawn = |source| CommandError::Spawn {
            program: program.to_owned(),
            source,
        };
        let mut child = command.spawn().map_err(spawn)?;
        let too_much = Arc::new(AtomicBool::new(false));
        let stdout = capture(child.stdout.take(), self.policy.max_output, &too_much);
        let stderr = capture(child.stderr.take(), self.policy.max_output, &too_much);
        let deadline = Instant::now() + self.policy.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(spawn)? {
                break status;
            }
            let over = too_much.load(Ordering::Relaxed);
            if over || Instant::now() >= deadline {
                kill_group(&mut child);
                let _ = (stdout.join(), stderr.join());
                return Err(if over {
                    CommandError::OutputTooLarge(program.to_owned())
                } else {
                    CommandError::TimedOut(program.to_owned())
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let output = CommandOutput {
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        if too_much.load(Ordering::Relaxed) {
            return Err(CommandError::OutputTooLarge(program.to_owned()));
        }
        if !status.success() {
            return Err(CommandError::Failed {
                program: program.to_owned(),
                status,
                stderr: output.stderr,
            });
        }
        Ok(output)
    }
}

/// Reads `pipe` to its end on a thread, keeping at most `cap` bytes; past the cap it raises
/// `too_much` (the run is then killed) and discards the rest.
fn capture(
    pipe: Option<impl Read + Send + 'static>,
    cap: usize,
    too_much: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    let too_much = too_much.clone();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let Some(mut pipe) = pipe else { return kept };
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
            if n > room {
                too_much.store(true, Ordering::Relaxed);
            }
        }
        kept
    })
}

fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        let group = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
