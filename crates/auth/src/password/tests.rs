use super::*;

fn check(password: &str, expected: Result<(), PasswordRejection>) {
    let email = Email::parse("ada.lovelace@example.com").unwrap();
    assert_eq!(
        PasswordPolicy::default().check(password, Some(&email)),
        expected,
        "{password:?}"
    );
}

#[test]
fn policy_accepts_long_uncommon_passwords() {
    check("correct horse battery staple", Ok(()));
    check("ünïcødé pässwörd ✓", Ok(()));
    let longest: String = (0..64u32).map(|i| format!("{:02x}", i * 7 % 251)).collect();
    check(&longest, Ok(()));
}

#[test]
fn policy_refuses_short_long_common_and_email() {
    check("short1!", Err(PasswordRejection::TooShort(12)));
    // 11 characters but 22 bytes: length counts characters.
    check("ééééééééééé", Err(PasswordRejection::TooShort(12)));
    check(&"x".repeat(129), Err(PasswordRejection::TooLong(128)));
    for common in [
        "passwordpassword",
        "PasswordPassword",
        "password123456",
        "qwertyuiop2024!",
        "123456789012",
        "1qaz2wsx3edc",
        "aaaaaaaaaaaa",
        "abcabcabcabc",
    ] {
        check(common, Err(PasswordRejection::Common));
    }
    check(
        "my ada.lovelace@example.com pw",
        Err(PasswordRejection::ContainsEmail),
    );
    check(
        "ada.lovelace is great",
        Err(PasswordRejection::ContainsEmail),
    );
}

#[test]
fn common_list_is_shipped() {
    assert!(PasswordPolicy::common_list_len() >= 10_000);
}

fn fast() -> Argon2id {
    Argon2id::new(HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap()
}

#[test]
fn hash_verifies_and_salts() {
    let h = fast();
    let a = h.hash_sync("correct horse battery staple").unwrap();
    let b = h.hash_sync("correct horse battery staple").unwrap();
    assert_ne!(a, b, "salted");
    assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
    assert_eq!(
        h.verify_sync("correct horse battery staple", Some(&a)),
        Verification {
            matches: true,
            needs_rehash: false
        }
    );
    assert!(
        !h.verify_sync("wrong horse battery staple", Some(&a))
            .matches
    );
}

#[test]
fn unknown_or_malformed_hash_never_matches() {
    let h = fast();
    assert!(!h.verify_sync("anything", None).matches);
    assert!(!h.verify_sync("anything", Some("not a phc string")).matches);
    assert!(
        !h.verify_sync("phaze dummy password, never valid", None)
            .matches
    );
}

#[test]
fn changed_parameters_ask_for_rehash() {
    let old = fast().hash_sync("correct horse battery staple").unwrap();
    let new = Argon2id::new(HashParams {
        m_cost: 128,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap();
    assert_eq!(
        new.verify_sync("correct horse battery staple", Some(&old)),
        Verification {
            matches: true,
            needs_rehash: true
        }
    );
    // A wrong password never asks for a rehash, whatever the parameters.
    assert!(!new.verify_sync("wrong", Some(&old)).needs_rehash);
}

#[test]
fn default_parameters_are_owasp() {
    assert_eq!(
        HashParams::default(),
        HashParams {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1
        }
    );
}

#[test]
fn hashes_interoperate_with_the_reference_implementation() {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
    let ours = Argon2id::new(HashParams {
        m_cost: 256,
        t_cost: 2,
        p_cost: 1,
    })
    .unwrap();
    let reference = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(256, 2, 1, None).unwrap(),
    );
    // Our hash verifies with the crate's own verifier...
    let phc = ours.hash_sync("correct horse battery staple").unwrap();
    let parsed = argon2::PasswordHash::new(&phc).unwrap();
    assert!(reference
        .verify_password(b"correct horse battery staple", &parsed)
        .is_ok());
    assert!(reference.verify_password(b"wrong", &parsed).is_err());
    // ...and the crate's hashes (other parameters too) verify with ours.
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let theirs = reference
        .hash_password("pässwörd ünïcode".as_bytes(), &salt)
        .unwrap()
        .to_string();
    assert!(ours.verify_sync("pässwörd ünïcode", Some(&theirs)).matches);
    let argon2i = argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        argon2::Params::new(128, 3, 1, None).unwrap(),
    );
    let old = argon2i.hash_password(b"legacy", &salt).unwrap().to_string();
    assert_eq!(
        ours.verify_sync("legacy", Some(&old)),
        Verification {
            matches: true,
            needs_rehash: true
        }
    );
}

#[test]
fn memory_buffers_are_reused_and_bounded() {
    let h = fast();
    for _ in 0..20 {
        h.hash_sync("correct horse battery staple").unwrap();
    }
    assert!(
        h.spare.lock().unwrap().len() <= 1,
        "one sequential caller keeps one buffer"
    );
}

/// Clears and returns the argon2 computations `h` did since the last call.
fn work(h: &Argon2id) -> Vec<(u32, u32, u32)> {
    std::mem::take(&mut *h.work.lock().unwrap())
}

/// The enumeration defence, proved by counting instead of timing: checking a password against
/// no account (`None`) or a malformed stored hash runs exactly the argon2 computation, with the
/// configured parameters, that checking it against a real hash runs. Removing the dummy work
/// makes this fail.
#[test]
fn unknown_accounts_cost_one_argon2_computation_like_known_ones() {
    let params = HashParams {
        m_cost: 256,
        t_cost: 3,
        p_cost: 1,
    };
    let h = Argon2id::new(params).unwrap();
    let stored = h.hash_sync("correct horse battery staple").unwrap();
    work(&h);
    let one = vec![(256, 3, 1)];

    assert!(!h.verify_sync("wrong password", Some(&stored)).matches);
    assert_eq!(work(&h), one, "known account, wrong password");
    assert!(
        h.verify_sync("correct horse battery staple", Some(&stored))
            .matches
    );
    assert_eq!(work(&h), one, "known account, right password");
    assert!(!h.verify_sync("wrong password", None).matches);
    assert_eq!(work(&h), one, "unknown account");
    assert!(!h.verify_sync("correct horse battery staple", None).matches);
    assert_eq!(work(&h), one, "unknown account, any password");
    for malformed in [
        "",
        "not a hash",
        "$argon2id$v=19$m=256,t=3,p=1$$",
        "$argon2id$v=19$m=256,t=3,p=1$c2FsdHNhbHQ",
    ] {
        assert!(!h.verify_sync("wrong password", Some(malformed)).matches);
        assert_eq!(work(&h), one, "malformed stored hash {malformed:?}");
    }
}
