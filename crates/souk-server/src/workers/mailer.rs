//! The e-mail job: sends the e-mails of one person's notifications, one message each, in order.
//! A notification is e-mailed once: its `emailed_at` is read before sending and set with the
//! job's end, so a replayed or retried job whose messages already went out sends nothing again.
//! When one message fails, the ones sent before it are recorded first, and the retry sends only
//! the rest. (Should souk stop between the server accepting a message and that write, the retry
//! sends it again with the same `Message-ID`, by which mail systems drop the copy.)

use super::{BoxFuture, JobHandler, Step, Trace};
use crate::mail::Mail;
use crate::AppState;
use souk_core::ids::NotificationId;
use souk_store::jobs::{Job, JobEnd, JobState};
use souk_store::notifications::EMAIL_JOB;

/// What an e-mail job carries.
#[derive(serde::Deserialize)]
struct Payload {
    #[serde(default)]
    notification_ids: Vec<NotificationId>,
    /// The one notification of a job queued before e-mails were sent by person.
    notification_id: Option<NotificationId>,
}

/// Runs `email.send` jobs.
pub struct EmailHandler;

impl JobHandler for EmailHandler {
    fn kind(&self) -> &'static str {
        EMAIL_JOB
    }

    fn run<'a>(
        &'a self,
        state: &'a AppState,
        job: &'a Job,
        trace: &'a mut Trace,
    ) -> BoxFuture<'a, Result<Step, souk_store::Error>> {
        Box::pin(send(state, job, trace))
    }
}

async fn send(state: &AppState, job: &Job, trace: &mut Trace) -> Result<Step, souk_store::Error> {
    let done = JobEnd {
        id: &job.id,
        attempts: job.attempts,
        state: JobState::Done,
        error: None,
    };
    let ids = match serde_json::from_str::<Payload>(&job.payload) {
        Ok(Payload {
            mut notification_ids,
            notification_id,
        }) => {
            notification_ids.extend(notification_id);
            notification_ids
        }
        Err(_) => Vec::new(),
    };
    if ids.is_empty() {
        let why = format!("unreadable payload {}", job.payload);
        super::bury(state, job, &why, why.clone()).await?;
        return Ok(Step::Dead(why));
    }
    let mut sent = Vec::new();
    for (n, to) in state.store.notifications_to_email(&ids).await? {
        if n.emailed_at.is_some() {
            continue;
        }
        let mail = Mail {
            id: n.id.to_string(),
            to_name: to.name.clone(),
            to_address: to.address.clone(),
            subject: n.title.clone(),
            text: text(state, &to.name, &n.body, n.link.as_deref()),
        };
        trace.request = Some(format!(
            "e-mail {:?} to {} ({} sent before it)",
            mail.subject,
            mail.to_address,
            sent.len()
        ));
        let failed = match state.mailer.send(&mail).await {
            Ok(()) => {
                sent.push(n.id);
                continue;
            }
            Err(e) => e,
        };
        if !sent.is_empty() {
            state.store.record_emailed(&sent, state.now()).await?;
        }
        if failed.permanent {
            let why = format!("the mail server refused the e-mail for good: {failed}");
            super::bury(state, job, &why, why.clone()).await?;
            return Ok(Step::Dead(why));
        }
        return Ok(Step::Retry(format!("sending the e-mail failed: {failed}")));
    }
    trace.answer = Some(format!("{} sent", sent.len()));
    state.store.end_emailed(done, &ids, state.now()).await?;
    Ok(Step::Done)
}

/// The e-mail's text: a greeting, what happened, where to act, and where to change e-mails.
fn text(state: &AppState, name: &str, body: &str, link: Option<&str>) -> String {
    let base = state
        .settings
        .public_url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let mut text = format!("Hello {name},\n\n{}\n", wrap(body, 72));
    // Without a public URL souk does not know its own address; the path still says where.
    let at = |path: &str| {
        if base.is_empty() {
            format!("souk, at {path}")
        } else {
            format!("{base}{path}")
        }
    };
    if let Some(link) = link {
        text.push_str(&format!("\nSee {}\n", at(link)));
    }
    text.push_str(&format!(
        "\n-- \nChoose which e-mails you get at {}\n",
        at("/notifications")
    ));
    text
}

/// Breaks text into lines of at most `width` characters at spaces (a longer word keeps its own
/// line), as plain-text mail is read.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    let mut line = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn mail_text_wraps_at_spaces_and_keeps_long_words_whole() {
        let wrapped = wrap(
            "Your order of Acme Notes (Team plan, 1 month, CNY 99.00) is paid.",
            24,
        );
        assert_eq!(
            wrapped,
            "Your order of Acme Notes\n(Team plan, 1 month, CNY\n99.00) is paid."
        );
        assert!(wrapped.lines().all(|l| l.chars().count() <= 24));
        assert_eq!(
            wrap(
                "see https://market.example.com/instances/ins_0123456789",
                10
            ),
            "see\nhttps://market.example.com/instances/ins_0123456789"
        );
        assert_eq!(wrap("", 10), "");
    }
}
