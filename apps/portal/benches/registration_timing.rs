//! Does `POST /register` (or `POST /password/forgot`) take longer for a new address than for a
//! registered one?
//!
//! The attack of finding 12.2, run against the portal on the fs store (the embedded default,
//! where each write is fsynced): send the form for a known address and a new one in turn, many
//! times, interleaved so that drift of the machine hits both alike; then report the medians, the
//! mean difference with its 95% confidence interval, and how often the best single threshold on
//! the answer time tells the two apart (50% is chance). Method and figures: docs/threat-model.md.
//!
//! `cargo bench -p phaze-portal --bench registration_timing` (`PAIRS=200` by default;
//! `FORM=forgot` for the password reset request; `FORM=login-2fa` for a wrong password against an
//! account with two-factor authentication on ("known") and one with it off ("new");
//! `FORM=login-code` for a wrong code after the right password ("known") and after a wrong one
//! ("new"), on the 2FA account: does the answer tell that the password was right?).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

const PW: &str = "correct horse battery staple";

fn main() {
    let pairs: usize = std::env::var("PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(200);
    actix_web::rt::System::new().block_on(run(pairs));
}

fn form() -> String {
    std::env::var("FORM").unwrap_or_else(|_| "register".into())
}

/// `POST /register` or, with `forgot`, `POST /password/forgot`, for `email`: the answer time.
/// The login forms take `email` as `<address>|<password>`.
async fn register(b: &phaze_e2e::Browser, email: &str) -> Duration {
    let form = form();
    let start = Instant::now();
    let (r, expected) = match form.as_str() {
        "forgot" => (
            b.post_form("/password/forgot", &[("email", email)]).await,
            200,
        ),
        "login-2fa" | "login-code" => {
            let (address, password) = email.split_once('|').unwrap_or((email, PW));
            let fields = [
                ("email", address),
                ("password", password),
                ("totp", "000000"),
            ];
            (b.post_form("/login", &fields).await, 401)
        }
        _ => (
            b.post_form(
                "/register",
                &[("email", email), ("password", PW), ("password_confirm", PW)],
            )
            .await,
            200,
        ),
    };
    let took = start.elapsed();
    assert_eq!(r.status.as_u16(), expected, "{}", r.body);
    took
}

/// The two sides of a login mode, as `<address>|<password>`, after setting them up on `p`.
async fn login_sides(p: &phaze_e2e::TestPortal, code_mode: bool) -> (String, String) {
    use phaze_portal::clock::Clock;
    let on = p.user("on@example.com", PW).await;
    let app = phaze_e2e::totp_key_on(&on.get("/account/2fa").await.body);
    let code = app.code_at(p.clock.now()).unwrap();
    let r = on
        .post_form("/account/2fa/enable", &[("code", &code)])
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    p.user("off@example.com", PW).await;
    const WRONG: &str = "not the password at all";
    if code_mode {
        (
            format!("on@example.com|{PW}"),
            format!("on@example.com|{WRONG}"),
        )
    } else {
        (
            format!("on@example.com|{WRONG}"),
            format!("off@example.com|{WRONG}"),
        )
    }
}

async fn run(pairs: usize) {
    let form = form();
    let forgot = form == "forgot";
    let login = form.starts_with("login");
    let dir = tempfile::tempdir().unwrap();
    // The known address is asked about hundreds of times: lift its reset budget, and for the
    // login modes every login limit (the lockout would otherwise answer 429 after ten).
    let p = phaze_e2e::spawn_fs_portal_with(dir.path(), |s| {
        s.ratelimit.reset_per_address = u32::MAX;
        if login {
            s.ratelimit.login_per_client = 1_000_000;
            s.ratelimit.challenge_after_failures = 1_000_000;
            s.ratelimit.lockout_after_failures = 1_000_000;
            s.ratelimit.post_per_client = 1_000_000;
        }
    })
    .await;
    let (known_address, unknown_address) = if login {
        login_sides(&p, form == "login-code").await
    } else {
        p.user("known@example.com", PW).await;
        (
            "known@example.com".to_owned(),
            "nobody@example.com".to_owned(),
        )
    };
    let b = p.browser();
    b.get(if login { "/login" } else { "/register" }).await;
    // Warm up both paths.
    for i in 0..10 {
        register(&b, &known_address).await;
        if login {
            register(&b, &unknown_address).await;
        } else {
            register(&b, &format!("warm{i}@example.com")).await;
        }
        if forgot {
            register(&b, &unknown_address).await;
        }
    }
    let (mut known, mut new) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        // Alternate which goes first, so neither always follows the other's background work.
        // A registration needs a new address each time; a reset request asks about one unknown
        // address again and again, as the known one is, so both per-address budget files are
        // warm and only the account's existence differs.
        let fresh = if forgot || login {
            unknown_address.clone()
        } else {
            format!("new{i}@example.com")
        };
        if i % 2 == 0 {
            known.push(register(&b, &known_address).await);
            new.push(register(&b, &fresh).await);
        } else {
            new.push(register(&b, &fresh).await);
            known.push(register(&b, &known_address).await);
        }
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let (k, n): (Vec<f64>, Vec<f64>) =
        (known.iter().map(ms).collect(), new.iter().map(ms).collect());
    let diffs: Vec<f64> = n.iter().zip(&k).map(|(n, k)| n - k).collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (diffs.len() - 1) as f64;
    let half_ci = 1.96 * (var / diffs.len() as f64).sqrt();
    println!("{form} timing, fs store, {pairs} interleaved pairs");
    println!(
        "  median known {:.2} ms, new {:.2} ms",
        median(&k),
        median(&n)
    );
    println!(
        "  mean(new - known) {mean:+.2} ms, 95% CI [{:+.2}, {:+.2}] ms",
        mean - half_ci,
        mean + half_ci
    );
    println!(
        "  best threshold classifier: {:.1}% right (50% = chance)",
        100.0 * best_threshold_accuracy(&k, &n)
    );
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The accuracy of the best rule "slower than t means new" (or its reverse) over every t: what an
/// attacker who knew the two distributions could reach on one request.
fn best_threshold_accuracy(known: &[f64], new: &[f64]) -> f64 {
    let mut all: Vec<f64> = known.iter().chain(new).copied().collect();
    all.sort_by(f64::total_cmp);
    let mut best: f64 = 0.5;
    for t in all {
        let k_below = known.iter().filter(|&&x| x <= t).count() as f64 / known.len() as f64;
        let n_above = new.iter().filter(|&&x| x > t).count() as f64 / new.len() as f64;
        let accuracy = (k_below + n_above) / 2.0;
        best = best.max(accuracy).max(1.0 - accuracy);
    }
    best
}
