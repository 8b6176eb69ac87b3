//! Several processes on one store: the harness that lets a test binary re-run itself as child
//! processes, and the cross-process contract of the ports built on it.
//!
//! A suite describes its adapter once, as a [`Processes`]: how to make a fresh, empty place for
//! one race (a directory, a schema, a key prefix) and how to open each port's store there. Its
//! `main` calls [`Processes::child_entry`] before the harness, and lists [`Processes::tests`]:
//!
//! ```text
//! // tests/it/multiprocess.rs
//! pub(crate) fn processes() -> Processes {
//!     Processes::new(module_path!(), fresh_prefix)
//!         .tasks(12)
//!         .sessions(|prefix| Arc::new(redis(prefix).sessions()))
//!         .rate_limits(|prefix| Arc::new(redis(prefix).rate_limits()))
//!         .role(HOLD_LOCK, hold_lock) // a role of the suite's own tests
//! }
//!
//! // tests/it/main.rs
//! fn main() -> ExitCode {
//!     let cross_process = multiprocess::processes();
//!     if let Some(exit) = cross_process.child_entry() {
//!         return exit; // a child: it played its role; no harness, so no test counted
//!     }
//!     harness::run(redis.gate(cross_process.tests()))
//! }
//! ```
//!
//! A child is the test binary started with `PHAZE_TESTKIT_CHILD_*` environment variables naming
//! its role, its number and a scratch directory. It gets ready (opens its store, connects), says
//! so with a `ready-<n>` file, and waits for one byte on its stdin: the parent writes it to every
//! child at once, so they act together. It reports through a `result-<n>` file; what it prints
//! goes to `stderr-<n>`, which the parent shows when a child fails. A child that waits to be
//! killed ([`Child::hold`]) waits for its stdin to close, so it also ends when its parent dies.
//! Nothing here sleeps in place of a signal: every wait is for a file or an exit, with a deadline.

use crate::harness::Test;
use futures_util::future::LocalBoxFuture;
use phaze_audit::{AuditLog, AuditStore, Draft, Verdict};
use phaze_auth::{AccountStore, Email, StoreError as AuthError, TokenStore};
use phaze_payments::{Claim, ClaimToken, ProcessedEvents};
use phaze_ratelimit::{RateLimitStore, Step, Window};
use phaze_sessions::{Rotation, SessionStore, StoreError as SessionError};
use std::any::Any;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accounts::account;
use crate::ratelimit::{gate, key, spread_key, GateTally};
use crate::sessions::{record, rotation};
use crate::t0;
use crate::tokens::token;

/// The role a child plays; also what tells `main` it is a child.
const ENV_ROLE: &str = "PHAZE_TESTKIT_CHILD_ROLE";
/// The scratch directory of the barrier, result and output files.
const ENV_DIR: &str = "PHAZE_TESTKIT_CHILD_DIR";
/// The child's number, naming its files.
const ENV_INDEX: &str = "PHAZE_TESTKIT_CHILD_INDEX";
/// Prefix of the arguments a test passes its children ([`spawn`]).
const ENV_ARG: &str = "PHAZE_TESTKIT_CHILD_ARG_";

/// How long children may take to get ready, and to finish once started. Generous: on a loaded
/// machine a dozen test binaries starting and connecting take seconds.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often a waiting parent looks at its children's files and exits.
const POLL: Duration = Duration::from_millis(1);

/// Sequential hits each task of a child makes in the rate-limit race.
const HITS_PER_TASK: usize = 3;
/// The rate-limit key every child hits.
const RACED_LIMIT_KEY: u8 = 0x77;
/// A rate-limit key only the warm-up looks at.
const WARM_LIMIT_KEY: u8 = 0x01;
/// Runs each task of a gate-racing child makes, one after the other.
const GATE_RUNS_PER_TASK: usize = 3;
/// The session every inserting child inserts (with sealed bytes of its own).
const INSERTED_SESSION: u8 = 0x01;
/// The session every rotating child rotates, each into key byte `ROTATED_INTO + n`.
const ROTATED_SESSION: u8 = 0x21;
const ROTATED_INTO: u8 = 0x80;
/// A session key only the warm-up looks at.
const WARM_SESSION: u8 = 0xee;
/// The token every consuming child tries, and one nobody issued, for the warm-up.
const RACED_TOKEN: u8 = 5;
const WARM_TOKEN: u8 = 0xee;
/// The email every registering child registers.
const RACED_EMAIL: &str = "race@example.com";
/// The webhook event id processes race to claim.
const RACED_EVENT: &str = "evt_raced";
/// Entries each task of each child appends in the audit race.
const AUDIT_APPENDS: usize = 5;
/// The audit race's chain key.
const AUDIT_KEY: [u8; 32] = [6; 32];

// ---------------------------------------------------------------------------------------------
// The child's side.

/// What a child knows: its role, its number and what the test passed it.
pub struct Child {
    role: String,
    dir: PathBuf,
    index: usize,
}

impl Child {
    /// The child's number, `0..count`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// An argument the test passed to [`spawn`]; panics, saying which, if it passed none.
    pub fn arg(&self, name: &str) -> String {
        std::env::var(format!("{ENV_ARG}{name}")).unwrap_or_else(|_| {
            panic!(
                "child {} ({}) was given no `{name}` argument",
                self.index, self.role
            )
        })
    }

    /// Tells the parent this child is ready ([`Children::wait_ready`]).
    pub fn ready(&self) {
        fs::write(self.dir.join(format!("ready-{}", self.index)), b"").unwrap();
    }

    /// [`Child::ready`], then blocks until the parent releases every child ([`Children::go`]).
    pub fn wait_for_go(&self) {
        self.ready();
        let mut byte = [0u8; 1];
        let read = std::io::stdin().lock().read(&mut byte).unwrap();
        assert_eq!(read, 1, "the parent went away before the start");
    }

    /// [`Child::ready`], then blocks until the parent kills this process or goes away: for a
    /// child that holds something (a lock, a directory) while the test looks on.
    pub fn hold(&self) {
        self.ready();
        let mut rest = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut rest);
    }
}

/// A role's body: runs in the child, returns what it reports to the parent.
pub type Play = fn(&Child) -> String;

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// A scratch directory of its own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("phaze-processes-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Self(path),
                // Left by an earlier run whose process had this id.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Child processes of one test, all in one role. Dropping them kills those still running.
pub struct Children {
    role: String,
    running: Vec<Option<std::process::Child>>,
    // After `running`: the children are dead before their directory goes.
    dir: Scratch,
}

/// Starts `count` copies of this test binary in `role`, with `args` for [`Child::arg`]. They
/// get ready by themselves; [`Children::wait_ready`] waits for that.
pub fn spawn(role: &str, count: usize, args: &[(&str, &str)]) -> Children {
    let dir = Scratch::new();
    let exe = this_binary();
    let running = (0..count)
        .map(|i| {
            let out = fs::File::create(dir.0.join(format!("stderr-{i}"))).unwrap();
            let child = Command::new(&exe)
                .env(ENV_ROLE, role)
                .env(ENV_DIR, &dir.0)
                .env(ENV_INDEX, i.to_string())
                .envs(args.iter().map(|(k, v)| (format!("{ENV_ARG}{k}"), v)))
                .stdin(Stdio::piped())
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start child {i} ({role}): {e}"));
            Some(child)
        })
        .collect();
    Children {
        role: role.to_owned(),
        running,
        dir,
    }
}

/// The running test binary. On Linux its `/proc` link, which executes this very file even if a
/// build (another `cargo test` on a shared target directory) has replaced or removed it since:
/// children must run the parent's code, and the path may be missing for a moment.
fn this_binary() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap()
    }
}

/// Starts `count` children in `role`, releases them together once all are ready, and returns
/// their reports, in order.
pub fn race(role: &str, count: usize, args: &[(&str, &str)]) -> Vec<String> {
    let mut children = spawn(role, count, args);
    children.wait_ready();
    children.go();
    children.finish()
}

impl Children {
    /// What child `i` printed.
    fn output(&self, i: usize) -> String {
        fs::read_to_string(self.dir.0.join(format!("stderr-{i}"))).unwrap_or_default()
    }

    fn failed(&self, i: usize, what: &str) -> ! {
        panic!(
            "child {i} ({}) {what}; its output:\n{}",
            self.role,
            self.output(i)
        )
    }

    fn exit_status(&mut self, i: usize) -> Option<ExitStatus> {
        let child = self.running[i].as_mut()?;
        child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for child {i}: {e}"))
    }

    /// Waits until every child is ready; panics if one exits first or the deadline passes.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        for i in 0..self.running.len() {
            while !self.dir.0.join(format!("ready-{i}")).exists() {
                if let Some(status) = self.exit_status(i) {
                    self.failed(i, &format!("exited before it was ready: {status}"));
                }
                if Instant::now() > deadline {
                    self.failed(i, &format!("was not ready within {DEADLINE:?}"));
                }
                std::thread::sleep(POLL);
            }
        }
    }

    /// Releases every child waiting in [`Child::wait_for_go`], one right after the other.
    pub fn go(&mut self) {
        for (i, child) in self.running.iter_mut().enumerate() {
            let stdin = child.as_mut().and_then(|c| c.stdin.as_mut());
            let sent = stdin.map(|s| s.write_all(b"g").and_then(|()| s.flush()));
            if let Some(Err(e)) = sent {
                panic!("cannot release child {i} ({}): {e}", self.role);
            }
        }
    }

    /// Waits for every child to exit and returns their reports, in order. Panics, with the
    /// child's output, if one fails, wrote no report or has not finished by the deadline.
    pub fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut reports = Vec::new();
        for i in 0..self.running.len() {
            let status = loop {
                if let Some(status) = self.exit_status(i) {
                    break status;
                }
                if Instant::now() > deadline {
                    self.failed(i, &format!("did not finish within {DEADLINE:?}"));
                }
                std::thread::sleep(POLL);
            };
            self.running[i] = None;
            if !status.success() {
                self.failed(i, &format!("failed: {status}"));
            }
            match self.result(i) {
                Some(report) => reports.push(report),
                None => self.failed(
                    i,
                    "exited without writing a result: does the test binary's `main` call \
                     `Processes::child_entry` before anything else?",
                ),
            }
        }
        reports
    }

    /// Kills child `i` (SIGKILL on Unix: no chance to clean up; the kernel releases its locks)
    /// and waits until it is gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.running[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// What child `i` reported, if it has.
    pub fn result(&self, i: usize) -> Option<String> {
        fs::read_to_string(self.dir.0.join(format!("result-{i}"))).ok()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.running.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cross-process contract.

/// How a suite opens a port's store at a place's name, in the parent and in each child.
pub type Open<S> = fn(&str) -> Arc<S>;

/// What a suite's `fresh` returns: a [`Place`], made on the test's runtime.
pub type Fresh = LocalBoxFuture<'static, Place>;

/// Where one race's stores live, made fresh by the suite: a `name` the children are given to
/// open their stores with, and what keeps the place (dropped: the place is removed).
pub struct Place {
    name: String,
    _guard: Box<dyn Any>,
}

impl Place {
    /// A place named `name` (what [`Open`] is given), kept as long as `guard` lives.
    pub fn new(name: impl Into<String>, guard: impl Any) -> Self {
        Self {
            name: name.into(),
            _guard: Box::new(guard),
        }
    }

    /// What [`Open`] is given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A rule of the cross-process contract: N processes race on one operation, exactly K win.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Processes, each hitting one rate-limit key from several tasks, admit exactly the limit.
    HittingOneKey,
    /// Processes running the login gate's steps (client budget, lock, attempt budget) from
    /// several tasks, the budgets in either order, admit exactly the lesser limit: a run is one
    /// atomic operation over its keys, and free of deadlock, across processes too.
    RunningOneGate,
    /// Processes inserting one session key admit exactly one, whose record is whole.
    InsertingOneSessionKey,
    /// Processes rotating one session agree on one successor.
    RotatingOneSession,
    /// Processes consuming one token admit exactly one.
    ConsumingOneToken,
    /// Processes registering one email make one account.
    RegisteringOneEmail,
    /// Processes claiming one webhook event id admit exactly one; the rest find it held.
    ClaimingOneEvent,
    /// Processes appending to one audit log from several tasks keep one chain, each entry once.
    AppendingToOneAuditLog,
}

impl Rule {
    /// The test's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HittingOneKey => "processes_hitting_one_key_admit_exactly_the_limit",
            Self::RunningOneGate => "processes_running_one_gate_admit_exactly_the_limit",
            Self::InsertingOneSessionKey => "processes_inserting_one_session_key_admit_exactly_one",
            Self::RotatingOneSession => "processes_rotating_one_session_agree_on_one_successor",
            Self::ConsumingOneToken => "processes_consuming_one_token_admit_exactly_one",
            Self::RegisteringOneEmail => "processes_registering_one_email_admit_exactly_one",
            Self::ClaimingOneEvent => "processes_claiming_one_event_admit_exactly_one",
            Self::AppendingToOneAuditLog => "processes_appending_to_one_audit_log_keep_one_chain",
        }
    }

    /// The role its children play.
    fn role(self) -> &'static str {
        match self {
            Self::HittingOneKey => "ratelimit::hit",
            Self::RunningOneGate => "ratelimit::run_gate",
            Self::InsertingOneSessionKey => "sessions::insert",
            Self::RotatingOneSession => "sessions::rotate",
            Self::ConsumingOneToken => "tokens::consume",
            Self::RegisteringOneEmail => "accounts::register",
            Self::ClaimingOneEvent => "payments::claim",
            Self::AppendingToOneAuditLog => "audit::append",
        }
    }

    const ALL: [Self; 8] = [
        Self::HittingOneKey,
        Self::RunningOneGate,
        Self::InsertingOneSessionKey,
        Self::RotatingOneSession,
        Self::ConsumingOneToken,
        Self::RegisteringOneEmail,
        Self::ClaimingOneEvent,
        Self::AppendingToOneAuditLog,
    ];
}

/// How the contract opens a suite's adapter: all `Copy`, so each test takes its own.
#[derive(Clone, Copy)]
struct Adapter {
    fresh: fn() -> Fresh,
    processes: usize,
    tasks: usize,
    sessions: Option<Open<dyn SessionStore>>,
    accounts: Option<Open<dyn AccountStore>>,
    tokens: Option<Open<dyn TokenStore>>,
    rate_limits: Option<Open<dyn RateLimitStore>>,
    processed_events: Option<Open<dyn ProcessedEvents>>,
    audit: Option<Open<dyn AuditStore>>,
    check: Option<fn(Rule, &str)>,
}

/// A suite's child roles and cross-process contract: see the [module](self) documentation.
pub struct Processes {
    module: String,
    adapter: Adapter,
    roles: BTreeMap<&'static str, Play>,
}

impl Processes {
    /// The suite in `module_path` (its `module_path!()`, which names the tests), whose races
    /// each run on a place `fresh` makes. Racing processes: 6; tasks per process: 1.
    pub fn new(module_path: &str, fresh: fn() -> Fresh) -> Self {
        Self {
            module: module_path.to_owned(),
            adapter: Adapter {
                fresh,
                processes: 6,
                tasks: 1,
                sessions: None,
                accounts: None,
                tokens: None,
                rate_limits: None,
                processed_events: None,
                audit: None,
                check: None,
            },
            roles: BTreeMap::new(),
        }
    }

    /// How many processes race on one operation.
    pub fn processes(mut self, n: usize) -> Self {
        assert!(n >= 2, "a race needs two processes");
        self.adapter.processes = n;
        self
    }

    /// How many tasks of each process hit the rate-limit key at once (the opener's pool should
    /// hold as many connections). Every process warms up that many before the start.
    pub fn tasks(mut self, n: usize) -> Self {
        assert!(n >= 1, "a process needs a task");
        self.adapter.tasks = n;
        self
    }

    /// The session rules, on stores `open` opens at a place's name.
    pub fn sessions(mut self, open: Open<dyn SessionStore>) -> Self {
        self.adapter.sessions = Some(open);
        self
    }

    /// The account rule, on stores `open` opens at a place's name.
    pub fn accounts(mut self, open: Open<dyn AccountStore>) -> Self {
        self.adapter.accounts = Some(open);
        self
    }

    /// The token rule, on stores `open` opens at a place's name.
    pub fn tokens(mut self, open: Open<dyn TokenStore>) -> Self {
        self.adapter.tokens = Some(open);
        self
    }

    /// The rate-limit rule, on stores `open` opens at a place's name.
    pub fn rate_limits(mut self, open: Open<dyn RateLimitStore>) -> Self {
        self.adapter.rate_limits = Some(open);
        self
    }

    /// The audit rule, on stores `open` opens at a place's name.
    pub fn audit(mut self, open: Open<dyn AuditStore>) -> Self {
        self.adapter.audit = Some(open);
        self
    }

    /// The webhook event rule, on stores `open` opens at a place's name.
    pub fn processed_events(mut self, open: Open<dyn ProcessedEvents>) -> Self {
        self.adapter.processed_events = Some(open);
        self
    }

    /// What the suite checks after each race of a rule, given the place's name, beyond what the
    /// ports show (no stray files in a directory, say).
    pub fn check(mut self, check: fn(Rule, &str)) -> Self {
        self.adapter.check = Some(check);
        self
    }

    /// A role of the suite's own tests, which start children in it with [`spawn`] or [`race`].
    pub fn role(mut self, name: &'static str, play: Play) -> Self {
        let taken = Rule::ALL.iter().any(|r| r.role() == name);
        assert!(!taken, "role {name} is the contract's");
        let previous = self.roles.insert(name, play);
        assert!(previous.is_none(), "role {name} registered twice");
        self
    }

    /// The rules of the ports given, as tests named `<module>::<rule>`.
    pub fn tests(&self) -> Vec<Test> {
        Rule::ALL
            .into_iter()
            .filter(|rule| self.adapter.has(*rule))
            .map(|rule| {
                let adapter = self.adapter;
                Test::new(Test::name_in(&self.module, rule.name()), move || {
                    adapter.run(rule);
                })
            })
            .collect()
    }

    /// The entry point of a child, which `main` calls first: in a child, plays its role, writes
    /// its report and returns the process's exit code; in the test binary proper, `None`.
    pub fn child_entry(&self) -> Option<ExitCode> {
        let role = std::env::var(ENV_ROLE).ok()?;
        let dir = PathBuf::from(std::env::var(ENV_DIR).expect("a child's directory"));
        let index = std::env::var(ENV_INDEX)
            .ok()
            .and_then(|i| i.parse().ok())
            .expect("a child's number");
        let child = Child { role, dir, index };
        let report = match Rule::ALL.into_iter().find(|r| r.role() == child.role) {
            Some(rule) => self.adapter.play(rule, &child),
            None => match self.roles.get(child.role.as_str()) {
                Some(play) => play(&child),
                None => {
                    let known: Vec<&str> = Rule::ALL
                        .iter()
                        .map(|r| r.role())
                        .chain(self.roles.keys().copied())
                        .collect();
                    eprintln!("no role {} here; known: {known:?}", child.role);
                    return Some(ExitCode::FAILURE);
                }
            },
        };
        fs::write(child.dir.join(format!("result-{index}")), report).unwrap();
        Some(ExitCode::SUCCESS)
    }
}

/// Whether this process is a child ([`Processes::child_entry`]): the harness refuses to run
/// tests in one, which would start children of their own.
pub(crate) fn in_child() -> bool {
    std::env::var_os(ENV_ROLE).is_some()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `op` `n` times at once, so a store's pool holds `n` open connections before a race: the
/// race is between operations, not connection setups. A store that fails here fails the child.
async fn warm<T, E: std::fmt::Debug, F>(n: usize, op: impl Fn() -> F)
where
    F: std::future::Future<Output = Result<T, E>>,
{
    for done in futures_util::future::join_all((0..n).map(|_| op())).await {
        if let Err(e) = done {
            panic!("the store failed before the start: {e:?}");
        }
    }
}

fn opener<T: ?Sized>(open: Option<Open<T>>, port: &str) -> Open<T> {
    open.unwrap_or_else(|| panic!("no {port} opener: the suite gave none"))
}

fn window(limit: usize) -> Window {
    Window::new(u32::try_from(limit).unwrap(), time::Duration::minutes(15))
}

/// The gate of the gate race, with client budget `l1` and attempt budget `l2`: the lock's key
/// sorts between the budgets', so a run that locks its keys in order takes them across the two.
fn gate_steps(l1: usize, l2: usize, flipped: bool) -> [Step; 3] {
    let minutes =
        |limit: usize, m| Window::new(u32::try_from(limit).unwrap(), time::Duration::minutes(m));
    gate(
        (spread_key(0x63), minutes(l1, 15)),
        (spread_key(0x62), minutes(1, 15)),
        (spread_key(0x61), minutes(l2, 60)),
        flipped,
    )
}

impl Adapter {
    fn has(&self, rule: Rule) -> bool {
        match rule {
            Rule::HittingOneKey | Rule::RunningOneGate => self.rate_limits.is_some(),
            Rule::InsertingOneSessionKey | Rule::RotatingOneSession => self.sessions.is_some(),
            Rule::ConsumingOneToken => self.tokens.is_some(),
            Rule::RegisteringOneEmail => self.accounts.is_some(),
            Rule::ClaimingOneEvent => self.processed_events.is_some(),
            Rule::AppendingToOneAuditLog => self.audit.is_some(),
        }
    }

    /// Opens a store inside `rt` (pools may spawn onto the runtime they start in).
    fn open<T: ?Sized>(rt: &tokio::runtime::Runtime, open: Open<T>, place: &str) -> Arc<T> {
        let _entered = rt.enter();
        open(place)
    }

    /// A child's part in `rule`: open and warm up, wait for the start, act once, report.
    fn play(&self, rule: Rule, child: &Child) -> String {
        let rt = runtime();
        let place = child.arg("place");
        let tasks = self.tasks;
        match rule {
            Rule::HittingOneKey => {
                let store = Self::open(&rt, opener(self.rate_limits, "rate-limit"), &place);
                let window = window(child.arg("limit").parse().unwrap());
                let idle = key(WARM_LIMIT_KEY);
                rt.block_on(warm(tasks, || store.peek(&idle, window, t0())));
                child.wait_for_go();
                let allowed = rt.block_on(async {
                    let hits = (0..tasks).map(|_| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let mut allowed = 0;
                            for _ in 0..HITS_PER_TASK {
                                let d = store.hit(&key(RACED_LIMIT_KEY), window, t0()).await;
                                allowed += usize::from(d.unwrap().allowed);
                            }
                            allowed
                        })
                    });
                    let done = futures_util::future::join_all(hits).await;
                    done.into_iter().map(Result::unwrap).sum::<usize>()
                });
                format!("allowed {allowed}")
            }
            Rule::RunningOneGate => {
                let store = Self::open(&rt, opener(self.rate_limits, "rate-limit"), &place);
                let (l1, l2) = (
                    child.arg("l1").parse().unwrap(),
                    child.arg("l2").parse().unwrap(),
                );
                let idle = spread_key(0x60);
                rt.block_on(warm(tasks, || store.peek(&idle, window(1), t0())));
                child.wait_for_go();
                let first = child.index();
                let tally = rt.block_on(async {
                    let runs = (0..tasks).map(|task| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let mut runs = Vec::new();
                            for run in 0..GATE_RUNS_PER_TASK {
                                // The two budgets in turns in either order.
                                let flipped = (first + task + run) % 2 == 1;
                                let steps = gate_steps(l1, l2, flipped);
                                runs.push((store.run(&steps, t0()).await.unwrap(), flipped));
                            }
                            runs
                        })
                    });
                    let mut tally = GateTally::default();
                    for task in futures_util::future::join_all(runs).await {
                        for (decisions, flipped) in task.unwrap() {
                            tally.add(&decisions, flipped);
                        }
                    }
                    tally
                });
                let GateTally {
                    full,
                    client,
                    attempts,
                } = tally;
                format!("full {full} client {client} attempts {attempts}")
            }
            Rule::InsertingOneSessionKey => {
                let store = Self::open(&rt, opener(self.sessions, "session"), &place);
                let mut s = record(INSERTED_SESSION, "alice");
                s.sealed = child.index().to_string().into_bytes();
                let idle = record(WARM_SESSION, "x").key;
                rt.block_on(warm(tasks, || store.get(&idle)));
                child.wait_for_go();
                match rt.block_on(store.insert(&s)) {
                    Ok(()) => "won".to_owned(),
                    Err(SessionError::Duplicate) => "duplicate".to_owned(),
                    Err(e) => panic!("insert failed: {e:?}"),
                }
            }
            Rule::RotatingOneSession => {
                let store = Self::open(&rt, opener(self.sessions, "session"), &place);
                let n = u8::try_from(child.index()).unwrap();
                let (retired, successor) =
                    rotation(&record(ROTATED_SESSION, "alice"), ROTATED_INTO + n);
                let idle = record(WARM_SESSION, "x").key;
                rt.block_on(warm(tasks, || store.get(&idle)));
                child.wait_for_go();
                match rt.block_on(store.rotate(&retired, &successor)) {
                    Ok(Rotation::Won) => "won".to_owned(),
                    Ok(Rotation::Lost(found)) => match found.successor {
                        Some(next) => format!("lost {}", next.to_hex()),
                        None => panic!("lost to a live record: {found:?}"),
                    },
                    Ok(Rotation::Gone) => panic!("the rotated session is gone"),
                    Err(e) => panic!("rotate failed: {e:?}"),
                }
            }
            Rule::ConsumingOneToken => {
                let store = Self::open(&rt, opener(self.tokens, "token"), &place);
                let (t, unissued) = (token(RACED_TOKEN), token(WARM_TOKEN));
                rt.block_on(warm(tasks, || {
                    store.consume(&unissued.hash, unissued.purpose, t0())
                }));
                child.wait_for_go();
                match rt.block_on(store.consume(&t.hash, t.purpose, t0())) {
                    Ok(Some(got)) if got.hash == t.hash => "got".to_owned(),
                    Ok(Some(other)) => panic!("consumed another token: {other:?}"),
                    Ok(None) => "none".to_owned(),
                    Err(e) => panic!("consume failed: {e:?}"),
                }
            }
            Rule::RegisteringOneEmail => {
                let store = Self::open(&rt, opener(self.accounts, "account"), &place);
                let a = account(RACED_EMAIL);
                rt.block_on(warm(tasks, || store.by_id(&a.id)));
                child.wait_for_go();
                match rt.block_on(store.insert(&crate::accounts::sealer().seal(&a))) {
                    Ok(()) => format!("won {}", a.id),
                    Err(AuthError::Duplicate) => "duplicate".to_owned(),
                    Err(e) => panic!("insert failed: {e:?}"),
                }
            }
            Rule::ClaimingOneEvent => {
                let store = Self::open(&rt, opener(self.processed_events, "event"), &place);
                let lease = time::Duration::minutes(1);
                let warm_token = ClaimToken::generate();
                rt.block_on(warm(tasks, || {
                    store.claim("evt_warm", &warm_token, t0(), lease)
                }));
                child.wait_for_go();
                let token = ClaimToken::generate();
                match rt.block_on(store.claim(RACED_EVENT, &token, t0(), lease)) {
                    Ok(Claim::Won) => "won".to_owned(),
                    Ok(Claim::Held) => "held".to_owned(),
                    Ok(Claim::Applied) => panic!("nobody marked it applied"),
                    Err(e) => panic!("claim failed: {e:?}"),
                }
            }
            Rule::AppendingToOneAuditLog => {
                let store = Self::open(&rt, opener(self.audit, "audit"), &place);
                rt.block_on(warm(tasks, || store.range(1, 1)));
                let log = AuditLog::new(store, AUDIT_KEY);
                let me = child.index();
                child.wait_for_go();
                rt.block_on(futures_util::future::join_all((0..tasks).map(|task| {
                    let log = log.clone();
                    async move {
                        for i in 0..AUDIT_APPENDS {
                            let draft = Draft::new(t0(), None, "test.append")
                                .detail(format!("{me}/{task}/{i}"));
                            log.record(draft).await.unwrap();
                        }
                    }
                })));
                "appended".to_owned()
            }
        }
    }

    /// The parent's part in `rule`: a fresh place per race, the children, the verdict.
    fn run(&self, rule: Rule) {
        match rule {
            Rule::HittingOneKey => self.hitting_one_key(),
            Rule::RunningOneGate => self.running_one_gate(),
            Rule::InsertingOneSessionKey => self.inserting_one_session_key(),
            Rule::RotatingOneSession => self.rotating_one_session(),
            Rule::ConsumingOneToken => self.consuming_one_token(),
            Rule::RegisteringOneEmail => self.registering_one_email(),
            Rule::ClaimingOneEvent => self.claiming_one_event(),
            Rule::AppendingToOneAuditLog => self.appending_to_one_audit_log(),
        }
    }

    fn after(&self, rule: Rule, place: &Place) {
        if let Some(check) = self.check {
            check(rule, place.name());
        }
    }

    fn hitting_one_key(&self) {
        let rule = Rule::HittingOneKey;
        let open = opener(self.rate_limits, "rate-limit");
        let per_process = self.tasks * HITS_PER_TASK;
        let p = self.processes;
        // Limits below, at and above the attempts: a limit of one, a few, all but one, all.
        for (processes, limit) in [
            (p, 1),
            (p, 5),
            (4, 4 * per_process - 1),
            (3, 3 * per_process + 2),
        ] {
            let rt = runtime();
            let place = rt.block_on((self.fresh)());
            let reports = race(
                rule.role(),
                processes,
                &[("place", place.name()), ("limit", &limit.to_string())],
            );
            let allowed: usize = reports
                .iter()
                .map(
                    |r| match r.strip_prefix("allowed ").map(str::parse::<usize>) {
                        Some(Ok(n)) => n,
                        _ => panic!("a child reported {r:?}"),
                    },
                )
                .sum();
            let attempts = processes * per_process;
            assert_eq!(
                allowed,
                attempts.min(limit),
                "{processes} processes, limit {limit}: {reports:?}"
            );
            // The store holds exactly the allowed hits: a peek agrees.
            let store = Self::open(&rt, open, place.name());
            let d = rt
                .block_on(store.peek(&key(RACED_LIMIT_KEY), window(limit), t0()))
                .unwrap();
            assert_eq!(d.remaining as usize, limit - allowed);
            self.after(rule, &place);
        }
    }

    fn running_one_gate(&self) {
        let rule = Rule::RunningOneGate;
        let open = opener(self.rate_limits, "rate-limit");
        let (processes, tasks) = (self.processes, self.tasks);
        let runs = processes * tasks * GATE_RUNS_PER_TASK;
        // The client budget (L1) or the attempt budget (L2) the lesser, or neither below the runs.
        for (l1, l2) in [
            (1, runs),
            (5, 3),
            (3, 7),
            (runs - 1, runs - 1),
            (runs + 2, runs),
        ] {
            let rt = runtime();
            let place = rt.block_on((self.fresh)());
            let reports = race(
                rule.role(),
                processes,
                &[
                    ("place", place.name()),
                    ("l1", &l1.to_string()),
                    ("l2", &l2.to_string()),
                ],
            );
            let mut sum = GateTally::default();
            for r in &reports {
                let counts: Vec<usize> = r
                    .split_whitespace()
                    .skip(1)
                    .step_by(2)
                    .map(|n| {
                        n.parse()
                            .unwrap_or_else(|_| panic!("a child reported {r:?}"))
                    })
                    .collect();
                let [full, client, attempts] = counts[..] else {
                    panic!("a child reported {r:?}")
                };
                sum.full += full;
                sum.client += client;
                sum.attempts += attempts;
            }
            let context = format!(
                "{processes} processes × {tasks} tasks, {runs} runs, L1={l1} L2={l2}: {sum:?}, \
                 per child {reports:?}"
            );
            assert_eq!(sum.full, runs.min(l1).min(l2), "{context}");
            // Each log holds exactly the hits reported allowed; the lock, only peeked, none.
            let store = Self::open(&rt, open, place.name());
            let [client, lock, attempts] = gate_steps(l1, l2, false);
            for (step, allowed) in [(client, sum.client), (attempts, sum.attempts), (lock, 0)] {
                let d = rt
                    .block_on(store.peek(&step.key, step.window, t0()))
                    .unwrap();
                let limit = step.window.limit as usize;
                assert_eq!(d.remaining as usize, limit - allowed, "{step:?}: {context}");
            }
            self.after(rule, &place);
        }
    }

    fn inserting_one_session_key(&self) {
        let rule = Rule::InsertingOneSessionKey;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.sessions, "session"), place.name());
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        let winners: Vec<usize> = (0..reports.len())
            .filter(|&i| reports[i] == "won")
            .collect();
        assert_eq!(winners.len(), 1, "{reports:?}");
        assert!(
            reports.iter().all(|r| r == "won" || r == "duplicate"),
            "{reports:?}"
        );
        let key = record(INSERTED_SESSION, "alice").key;
        let stored = rt.block_on(store.get(&key)).unwrap().unwrap();
        assert_eq!(
            stored.sealed,
            winners[0].to_string().into_bytes(),
            "the winner's record, whole"
        );
        assert_eq!(rt.block_on(store.list_user("alice")).unwrap(), vec![stored]);
        self.after(rule, &place);
    }

    fn rotating_one_session(&self) {
        let rule = Rule::RotatingOneSession;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.sessions, "session"), place.name());
        let old = record(ROTATED_SESSION, "alice");
        rt.block_on(store.insert(&old)).unwrap();
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        let winners: Vec<usize> = (0..reports.len())
            .filter(|&i| reports[i] == "won")
            .collect();
        assert_eq!(winners.len(), 1, "one successor per session: {reports:?}");
        let n = u8::try_from(winners[0]).unwrap();
        let (retired, successor) = rotation(&old, ROTATED_INTO + n);
        let lost = format!("lost {}", successor.key.to_hex());
        assert!(
            reports.iter().all(|r| *r == "won" || *r == lost),
            "every loser is given the winner's successor: {reports:?}"
        );
        assert_eq!(rt.block_on(store.get(&old.key)).unwrap(), Some(retired));
        assert_eq!(
            rt.block_on(store.list_user("alice")).unwrap().len(),
            2,
            "the retired record and one successor; the losers wrote nothing"
        );
        // A logout with the old id ends the successor too.
        assert!(rt.block_on(store.remove(&old.key)).unwrap());
        assert!(rt.block_on(store.list_user("alice")).unwrap().is_empty());
        self.after(rule, &place);
    }

    fn consuming_one_token(&self) {
        let rule = Rule::ConsumingOneToken;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.tokens, "token"), place.name());
        let t = token(RACED_TOKEN);
        rt.block_on(store.issue(&t)).unwrap();
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        let got = reports.iter().filter(|r| *r == "got").count();
        assert_eq!(got, 1, "{reports:?}");
        let none = reports.iter().filter(|r| *r == "none").count();
        assert_eq!(none, self.processes - 1, "{reports:?}");
        self.after(rule, &place);
    }

    fn registering_one_email(&self) {
        let rule = Rule::RegisteringOneEmail;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.accounts, "account"), place.name());
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        let winners: Vec<&str> = reports
            .iter()
            .filter_map(|r| r.strip_prefix("won "))
            .collect();
        assert_eq!(winners.len(), 1, "{reports:?}");
        let duplicates = reports.iter().filter(|r| *r == "duplicate").count();
        assert_eq!(duplicates, self.processes - 1, "{reports:?}");
        let email = Email::parse(RACED_EMAIL).unwrap();
        let index = crate::accounts::sealer().index(&email);
        let found = rt.block_on(store.by_email(&index)).unwrap().unwrap();
        assert_eq!(found.id.to_string(), winners[0]);
        self.after(rule, &place);
    }

    fn appending_to_one_audit_log(&self) {
        let rule = Rule::AppendingToOneAuditLog;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.audit, "audit"), place.name());
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        assert!(reports.iter().all(|r| r == "appended"), "{reports:?}");
        let total = self.processes * self.tasks * AUDIT_APPENDS;
        let log = AuditLog::new(store.clone(), AUDIT_KEY);
        assert_eq!(
            rt.block_on(log.verify()).unwrap(),
            Verdict::Intact {
                entries: total as u64
            }
        );
        let mut details: Vec<String> = rt
            .block_on(store.range(1, total + 1))
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect();
        details.sort();
        details.dedup();
        assert_eq!(details.len(), total, "each entry once");
        self.after(rule, &place);
    }

    fn claiming_one_event(&self) {
        let rule = Rule::ClaimingOneEvent;
        let rt = runtime();
        let place = rt.block_on((self.fresh)());
        let store = Self::open(&rt, opener(self.processed_events, "event"), place.name());
        let reports = race(rule.role(), self.processes, &[("place", place.name())]);
        let won = reports.iter().filter(|r| *r == "won").count();
        assert_eq!(won, 1, "{reports:?}");
        let held = reports.iter().filter(|r| *r == "held").count();
        assert_eq!(held, self.processes - 1, "{reports:?}");
        // Held, not applied: a claim is not an effect.
        let token = ClaimToken::generate();
        let late = store.claim(RACED_EVENT, &token, t0(), time::Duration::minutes(1));
        assert_eq!(rt.block_on(late).unwrap(), Claim::Held);
        self.after(rule, &place);
    }
}
