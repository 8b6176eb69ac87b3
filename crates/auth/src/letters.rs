//! The text of every message: tera templates (`templates/mail/`), compiled in as the defaults and
//! overridable by an operator from a directory without rebuilding.

use std::path::Path;
use tera::{Context, Tera};

use crate::MailError;

/// Every message, with its compiled-in default text.
const DEFAULTS: [(&str, &str); 9] = [
    (
        "verify_email.txt",
        include_str!("../../../templates/mail/verify_email.txt"),
    ),
    (
        "account_exists.txt",
        include_str!("../../../templates/mail/account_exists.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../../../templates/mail/password_changed.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("../../../templates/mail/password_reset.txt"),
    ),
    (
        "password_was_reset.txt",
        include_str!("../../../templates/mail/password_was_reset.txt"),
    ),
    (
        "two_factor_on.txt",
        include_str!("../../../templates/mail/two_factor_on.txt"),
    ),
    (
        "two_factor_off.txt",
        include_str!("../../../templates/mail/two_factor_off.txt"),
    ),
    (
        "recovery_codes_renewed.txt",
        include_str!("../../../templates/mail/recovery_codes_renewed.txt"),
    ),
    (
        "recovery_code_used.txt",
        include_str!("../../../templates/mail/recovery_code_used.txt"),
    ),
];

/// Why the templates could not be loaded: which one, and tera's reason.
#[derive(Debug, thiserror::Error)]
#[error("mail template {name}: {reason}")]
pub struct LetterError {
    /// The template's file name.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The mail templates. Each renders to `Subject: …`, a blank line, and the plain-text body.
#[derive(Clone, Debug)]
pub struct Letters {
    tera: Tera,
}

impl Default for Letters {
    /// The compiled-in texts.
    fn default() -> Self {
        let mut tera = Tera::default();
        for (name, text) in DEFAULTS {
            // The defaults are checked by this crate's tests; one that failed to parse would
            // leave its name unknown, and rendering it would fail (closed) with that name.
            if let Err(e) = tera.add_raw_template(name, text) {
                tracing::error!(template = name, error = %e, "compiled-in mail template does not parse");
            }
        }
        Self { tera }
    }
}

impl Letters {
    /// The defaults, with each file of `dir` named like one of them in its place (other files
    /// are ignored). Every template is then rendered once with sample values, so a template that
    /// does not parse or names an unknown variable is refused here, at start-up, by name.
    pub fn with_overrides(dir: &Path) -> Result<Self, LetterError> {
        let mut letters = Self::default();
        // Through a capability: a template that is a symlink out of the directory is refused.
        let dir = phaze_sanitize::SafeDir::open(dir).map_err(|e| LetterError {
            name: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        for (name, _) in DEFAULTS {
            let text = match dir.read(name) {
                Ok(Some(bytes)) => String::from_utf8(bytes).map_err(|e| fail(name, &e))?,
                Ok(None) => continue,
                Err(e) => return Err(fail(name, &e)),
            };
            letters
                .tera
                .add_raw_template(name, &text)
                .map_err(|e| fail(name, &e))?;
        }
        letters.check()?;
        Ok(letters)
    }

    /// Renders every template with sample values.
    pub fn check(&self) -> Result<(), LetterError> {
        let mut sample = Context::new();
        sample.insert("url", "https://portal.example");
        sample.insert("token", "TOKEN");
        sample.insert("hours", &24);
        sample.insert("minutes", &60);
        sample.insert("left", &9);
        for (name, _) in DEFAULTS {
            self.render(name, &sample).map_err(|e| LetterError {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// The subject and body of `name` with `context`.
    pub(crate) fn render(
        &self,
        name: &str,
        context: &Context,
    ) -> Result<(String, String), MailError> {
        let text = self.tera.render(name, context).map_err(|e| {
            MailError::Build(Box::new(LetterError {
                name: name.to_owned(),
                reason: chain(&e),
            }))
        })?;
        let (head, body) = text.split_once("\n\n").unwrap_or(("", &text));
        let subject = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Subject:"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                MailError::Build(Box::new(LetterError {
                    name: name.to_owned(),
                    reason: "the first line must be `Subject: …`, then a blank line".into(),
                }))
            })?;
        Ok((subject.to_owned(), format!("{}\n", body.trim_end())))
    }
}

fn fail(name: &str, e: &dyn std::error::Error) -> LetterError {
    LetterError {
        name: name.to_owned(),
        reason: chain(e),
    }
}

/// tera's error and its causes on one line (the cause says which variable or line).
fn chain(e: &dyn std::error::Error) -> String {
    let causes = std::iter::successors(Some(e), |e| e.source());
    causes
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_renders_with_a_subject_and_a_body() {
        let letters = Letters::default();
        letters.check().unwrap_or_else(|e| panic!("{e}"));
        let mut c = Context::new();
        c.insert("url", "https://p.example");
        c.insert("token", "T0K3N");
        c.insert("hours", &24);
        let (subject, body) = letters.render("verify_email.txt", &c).unwrap_or_default();
        assert_eq!(subject, "Confirm your email address");
        assert!(body.contains("https://p.example/verify/T0K3N"), "{body}");
        assert!(body.starts_with("Welcome") && !body.contains("Subject:"));
    }

    #[test]
    fn overrides_replace_by_name_and_broken_ones_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("password_changed.txt"),
            "Subject: Mot de passe changé\n\nBonjour. {{ url }}/login\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("unrelated.txt"), "{{ broken")
            .unwrap_or_else(|e| panic!("{e}"));
        let letters = Letters::with_overrides(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Context::new();
        c.insert("url", "https://p.example");
        let (subject, body) = letters
            .render("password_changed.txt", &c)
            .unwrap_or_default();
        assert_eq!(subject, "Mot de passe changé");
        assert_eq!(body, "Bonjour. https://p.example/login\n");

        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(outside.path().join("x.txt"), "Subject: stolen\n\n{{ url }}")
                .unwrap_or_else(|e| panic!("{e}"));
            std::os::unix::fs::symlink(
                outside.path().join("x.txt"),
                dir.path().join("two_factor_off.txt"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let e = Letters::with_overrides(dir.path()).err();
            let message = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains("two_factor_off.txt"),
                "a symlink out is refused: {message}"
            );
            std::fs::remove_file(dir.path().join("two_factor_off.txt"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for (text, why) in [
            ("Subject: x\n\n{{ url ", "does not parse"),
            ("Subject: x\n\n{{ nosuchvariable }}", "unknown variable"),
            ("no subject line\n\nbody", "no subject"),
        ] {
            std::fs::write(dir.path().join("two_factor_on.txt"), text)
                .unwrap_or_else(|e| panic!("{e}"));
            let e = Letters::with_overrides(dir.path()).err();
            let message = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("two_factor_on.txt"), "{why}: {message}");
        }
    }

    #[test]
    fn a_variable_cannot_add_a_header() {
        let letters = Letters::default();
        let mut c = Context::new();
        c.insert(
            "url",
            "https://p.example\r\nBcc: victim@example.com\n\nSubject: evil",
        );
        let (subject, body) = letters
            .render("password_changed.txt", &c)
            .unwrap_or_default();
        assert_eq!(subject, "Your password was changed");
        assert!(body.contains("Bcc:"), "the text stays in the body");
    }
}
