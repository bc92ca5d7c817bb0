//! Sending e-mail: through an SMTP server set in configuration, or into a directory of `.eml`
//! files (the outbox) when none is set, so a fresh souk never loses a message and an operator can
//! read what would have gone out.

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

/// Where e-mail goes.
#[derive(Clone, Debug)]
pub enum MailTransport {
    /// One `.eml` file per message in this directory.
    Outbox(PathBuf),
    /// An SMTP server, as a URL: `smtp://user:password@host:587?tls=required`,
    /// `smtps://host:465`, or `smtp://host:25` for a relay without TLS.
    Smtp(String),
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Stable per message (the notification's id): the file name in the outbox and the
    /// `Message-ID`, so a message that does go out twice is recognisably one.
    pub id: String,
    pub to_name: String,
    pub to_address: String,
    pub subject: String,
    pub text: String,
}

/// Why a message did not go out.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MailError {
    /// The server refused it for good (a bad address, say): trying again will not help.
    pub permanent: bool,
    pub message: String,
}

impl MailError {
    fn transient(message: impl Into<String>) -> Self {
        MailError {
            permanent: false,
            message: message.into(),
        }
    }

    fn permanent(message: impl Into<String>) -> Self {
        MailError {
            permanent: true,
            message: message.into(),
        }
    }
}

/// The sender address of souk's e-mail, parsed.
pub fn sender(from: &str) -> Result<Mailbox, String> {
    from.parse()
        .map_err(|e| format!("{from:?} is not an e-mail address: {e}"))
}

/// Checks an SMTP URL the way the mailer will read it.
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    smtp(url).map(drop)
}

fn smtp(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("not a usable SMTP URL: {e}"))?
        .timeout(Some(std::time::Duration::from_secs(30)))
        .build())
}

/// Sends e-mail by the configured transport.
pub struct Mailer {
    from: Mailbox,
    to: Sink,
}

enum Sink {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// A transport that could not be set up (configuration checks it first): every message
    /// waits in the queue, retried, until an operator fixes it.
    Broken(String),
}

impl Mailer {
    /// A mailer sending as `from` by `transport`.
    pub fn new(from: Mailbox, transport: &MailTransport) -> Mailer {
        let to = match transport {
            MailTransport::Outbox(dir) => Sink::Outbox(dir.clone()),
            MailTransport::Smtp(url) => smtp(url).map_or_else(Sink::Broken, Sink::Smtp),
        };
        Mailer { from, to }
    }

    /// Sends one message.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to = Mailbox::new(
            Some(mail.to_name.clone()),
            mail.to_address
                .parse()
                .map_err(|e| MailError::permanent(format!("{:?}: {e}", mail.to_address)))?,
        );
        let host = self.from.email.domain().to_owned();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .message_id(Some(format!("<{}@{host}>", mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|e| MailError::permanent(e.to_string()))?;
        match &self.to {
            Sink::Outbox(dir) => write_outbox(dir, &mail.id, &message.formatted()).await,
            Sink::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| MailError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
            Sink::Broken(why) => Err(MailError::transient(format!("smtp_url: {why}"))),
        }
    }
}

/// Writes a message as `<id>.eml`, whole or not at all: a temporary file renamed into place.
async fn write_outbox(dir: &std::path::Path, id: &str, bytes: &[u8]) -> Result<(), MailError> {
    // Ids are souk's own (letters, digits, `_`); anything else would be a bug, not a path.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(MailError::permanent(format!("unusable message id {id:?}")));
    }
    let tmp = dir.join(format!(".{id}.tmp"));
    let path = dir.join(format!("{id}.eml"));
    let bytes = bytes.to_vec();
    // One trip to the blocking pool for the whole message, not one a file operation; the folder
    // is made when the first write finds it missing.
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let written = std::fs::write(&tmp, &bytes).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&tmp, &bytes))
            }
            _ => Err(e),
        });
        written
            .map_err(|e| format!("outbox {}: {e}", tmp.display()))
            .and_then(|()| {
                std::fs::rename(&tmp, &path).map_err(|e| format!("outbox {}: {e}", path.display()))
            })
    })
    .await
    .map_err(|e| MailError::transient(format!("outbox: {e}")))?
    .map_err(MailError::transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_outbox_makes_its_folder_and_leaves_whole_messages_only() {
        let root = std::env::temp_dir().join(format!("souk-outbox-{}", rand::random::<u64>()));
        let dir = root.join("mail").join("outbox");
        write_outbox(&dir, "ntf_1", b"first").await.unwrap();
        write_outbox(&dir, "ntf_2", b"second").await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ntf_1.eml", "ntf_2.eml"]);
        assert_eq!(std::fs::read(dir.join("ntf_2.eml")).unwrap(), b"second");
        assert!(write_outbox(&dir, "../x", b"").await.unwrap_err().permanent);
        // A folder that cannot be made is a transient failure (an operator may fix it).
        let blocked = root.join("file");
        std::fs::write(&blocked, b"").unwrap();
        let err = write_outbox(&blocked.join("outbox"), "ntf_3", b"x")
            .await
            .unwrap_err();
        assert!(!err.permanent, "{}", err.message);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
