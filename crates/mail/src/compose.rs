//! One message, built with lettre's typed builder.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Address, Message};
use phaze_auth::{MailError, OutgoingMail};

/// The `From:` mailbox of configuration (`Phaze <no-reply@example.com>`).
pub fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse().map_err(|e| MailError::Build(Box::new(e)))
}

/// `mail` as an RFC 5322 message from `from`, with `Message-ID: <id@from's domain>` (the same on
/// every attempt, so a receiver can tell a repeat). lettre encodes every header value; the
/// subject is also made one line first, since a subject is never meant to hold a line break.
pub fn compose(from: &Mailbox, mail: &OutgoingMail, id: &str) -> Result<Message, MailError> {
    let to: Address = mail
        .to
        .as_str()
        .parse()
        .map_err(|e| MailError::Build(Box::new(e)))?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(one_line(&mail.subject))
        .message_id(Some(format!("<{id}@{}>", from.email.domain())))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError::Build(Box::new(e)))
}

/// Control characters (CR and LF among them) become spaces.
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use phaze_auth::Email;

    #[test]
    fn no_input_adds_a_header() {
        let from = parse_from("Phaze <no-reply@phaze.example>").unwrap_or_else(|e| panic!("{e}"));
        let mail = OutgoingMail {
            to: Email::parse("ada@example.com").unwrap_or_else(|| panic!("an address")),
            subject: "Hello\r\nBcc: victim@example.com".into(),
            body: "Line one\r\nBcc: other@example.com\r\n".into(),
        };
        let m = compose(&from, &mail, "abc").unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(m.formatted()).unwrap_or_default();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
        assert!(head.contains("Message-ID: <abc@phaze.example>"), "{head}");
        assert_eq!(m.envelope().to().len(), 1);
    }
}
