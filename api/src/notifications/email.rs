//! Email about unread messages: the SMTP transport (`lettre`), what one batch covers, and the
//! email itself (plain text and HTML, a link to the room, a one-click unsubscribe).
//!
//! A batch is read when it is sent, so it shows the messages as they are then: ones read,
//! deleted or by the recipient themselves are left out, and a batch with nothing left is
//! cancelled (see `personal` for what a batch covers). When its oldest unread message has
//! not yet waited the delay (the batch's first ones were read, a later one came), the batch
//! waits for it, uncounted.

use std::collections::HashMap;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sea_orm::{EntityTrait, FromQueryResult};
use uuid::Uuid;

use super::outbox;
use super::personal::{self, Channel};
use super::unsubscribe;
use super::worker::Failure;
use crate::db::columns;
use crate::error::ApiError;
use crate::state::AppState;
use entity::enums::RoomKind;
use entity::{messages, notification_deliveries, room_members, rooms, users};

/// Messages quoted in one email; the rest are counted.
const PREVIEWS: usize = 5;
/// Characters of a message quoted.
const PREVIEW_CHARS: usize = 80;
/// Messages one batch reads at most (the count says "at least" beyond it).
const BATCH_LIMIT: u64 = 100;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The longest one email may take, connecting included.
    timeout: Duration,
}

impl Mailer {
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("PARLEY_SMTP_URL: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from = from.parse().map_err(|e| anyhow::anyhow!("PARLEY_SMTP_FROM: {e}"))?;
        Ok(Self { transport, from, timeout })
    }
}

/// One batch as it stands now.
struct Batch {
    room: rooms::Model,
    /// The unread messages of the batch, oldest first.
    messages: Vec<messages::Model>,
    authors: HashMap<Uuid, users::Model>,
}

pub(super) async fn attempt(
    state: &AppState,
    delivery: &notification_deliveries::Model,
) -> Result<(), Failure> {
    // Only instances with a mailer claim email rows (see `worker::spawn`).
    let mailer =
        state.notifier.mailer.as_ref().ok_or_else(|| Failure::Retry("email is not configured".into()))?;
    let recipient = match delivery.recipient_id {
        Some(id) => state.directory.user(&state.store, id).await.map_err(Failure::reading)?,
        None => None,
    };
    let recipient = recipient.ok_or_else(|| Failure::Cancelled("the recipient no longer exists".into()))?;
    let Some(address) = recipient.email.as_deref() else {
        return Err(Failure::Cancelled("the recipient has no email address".into()));
    };
    let batch = batch(state, delivery, &recipient).await.map_err(Failure::reading)?;
    let batch = batch.map_err(|gone| Failure::Cancelled(gone.into()))?;
    if batch.messages.is_empty() {
        return Err(Failure::Cancelled("read before it was sent".into()));
    }
    // Read meanwhile, then written to again: the oldest message still unread waits its own
    // delay, as it would with no batch before it (as Slack and Mattermost restart the wait).
    // The row's own first message was due when the row was. Compared on the claim's clock,
    // which decides when the row is due again: an instance's own clock, a little behind, would
    // hand a due batch back and forth.
    if let Some(oldest) = batch.messages.first().filter(|m| Some(m.id) != delivery.message_id) {
        let claimed_at = outbox::claimed_at(delivery, state.limits.webhook_timeout());
        if let Some(due) = personal::email_due(state, oldest.created_at).filter(|due| *due > claimed_at) {
            return Err(Failure::NotYet { due });
        }
    }
    let last_seq = batch.messages.last().map_or(0, |m| m.seq);
    let unwanted = personal::still_wanted(state, &recipient, batch.room.id, last_seq, Channel::Email).await;
    if let Some(reason) = unwanted.map_err(Failure::reading)? {
        return Err(Failure::Cancelled(reason.into()));
    }
    let to = Mailbox::new(Some(recipient.display_name.clone()), address.parse().map_err(|_| bad_address())?);
    let email = compose(state, delivery.id, &mailer.from, to, &recipient, &batch)
        .map_err(|e| Failure::Permanent(format!("composing the email: {e}")))?;
    // lettre's timeout covers connecting only: a server that stops answering mid-conversation
    // must not hold the attempt past its lease (another worker would send it again).
    match tokio::time::timeout(mailer.timeout, mailer.transport.send(email)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_permanent() => Err(Failure::Permanent(format!("SMTP: {e}"))),
        Ok(Err(e)) => Err(Failure::Retry(format!("SMTP: {e}"))),
        Err(_) => Err(Failure::Retry("SMTP: timed out".into())),
    }
}

fn bad_address() -> Failure {
    Failure::Permanent("the recipient's email address cannot be addressed".into())
}

/// The batch's unread messages: from its first message up to the first message of the
/// recipient's next email row in the room, above their watermark, not deleted, not their
/// own, and in a channel only those that mention them; or why there is no batch any more.
async fn batch(
    state: &AppState,
    delivery: &notification_deliveries::Model,
    recipient: &users::Model,
) -> Result<Result<Batch, &'static str>, ApiError> {
    let db = &state.store.db;
    let (Some(room_id), Some(first_id)) = (delivery.room_id, delivery.message_id) else {
        return Ok(Err("the delivery names no message"));
    };
    let Some(first) = messages::Entity::find_by_id(first_id).one(db).await? else {
        return Ok(Err("the message no longer exists"));
    };
    let Some(room) = rooms::Entity::find_by_id(room_id).one(db).await? else {
        return Ok(Err("the room no longer exists"));
    };
    let Some(member) = room_members::Entity::find_by_id((room_id, recipient.id)).one(db).await? else {
        return Ok(Err("the recipient left the room"));
    };
    let sql = format!(
        "SELECT {} FROM messages m \
         WHERE m.room_id = $1 AND m.seq >= $2 AND m.seq > $3 AND m.deleted_at IS NULL \
           AND (m.author_user_id IS NULL OR m.author_user_id <> $4) \
           AND m.seq < COALESCE((SELECT MIN(n.seq) FROM notification_deliveries d \
               JOIN messages n ON n.id = d.message_id \
               WHERE d.channel = 'email' AND d.recipient_id = $4 AND d.room_id = $1 AND n.seq > $2), $5) \
           AND ($6 OR EXISTS (SELECT 1 FROM mentions x WHERE x.message_id = m.id AND x.user_id = $4)) \
         ORDER BY m.seq LIMIT {BATCH_LIMIT}",
        columns::<messages::Entity>(Some("m"))
    );
    let direct = room.kind == RoomKind::Direct;
    let values = vec![
        room_id.into(),
        first.seq.into(),
        member.last_read_seq.into(),
        recipient.id.into(),
        i64::MAX.into(),
        direct.into(),
    ];
    let messages = messages::Model::find_by_statement(state.store.stmt(&sql, values)).all(db).await?;
    let author_ids: Vec<Uuid> = messages.iter().filter_map(|m| m.author_user_id).collect();
    let authors = state.directory.users(&state.store, &author_ids).await?;
    Ok(Ok(Batch { room, messages, authors }))
}

fn compose(
    state: &AppState,
    delivery_id: Uuid,
    from: &Mailbox,
    to: Mailbox,
    recipient: &users::Model,
    batch: &Batch,
) -> Result<lettre::Message, lettre::error::Error> {
    let notifier = &state.notifier;
    let author_name = |m: &messages::Model| {
        let author = m.author_user_id.and_then(|id| batch.authors.get(&id));
        author.map_or("Someone", |a| a.display_name.as_str()).to_owned()
    };
    let mut names: Vec<String> = batch.messages.iter().map(author_name).collect();
    names.sort();
    names.dedup();
    let count = batch.messages.len();
    let more = if count as u64 == BATCH_LIMIT { "at least " } else { "" };
    let place = match batch.room.kind {
        RoomKind::Direct => String::new(),
        _ => format!(" in #{}", batch.room.name.as_deref().unwrap_or("a room")),
    };
    let plural = if count == 1 { "" } else { "s" };
    let subject = format!("{more}{count} unread message{plural} from {}{place}", names.join(", "));
    let link = format!("{}/app#room={}", notifier.public_url, batch.room.id);
    let unsubscribe = unsubscribe::link(notifier, recipient.id);
    let delay = notifier.email_delay.as_secs() / 60;
    let quoted: Vec<(String, String, String)> = batch
        .messages
        .iter()
        .take(PREVIEWS)
        .map(|m| (author_name(m), m.created_at.format("%H:%M UTC").to_string(), preview(&m.body)))
        .collect();
    let rest = count.saturating_sub(PREVIEWS);
    let rest_line = (rest > 0).then(|| format!("…and {more}{rest} more."));

    let mut text = format!("You have {subject}:\n\n");
    for (name, time, body) in &quoted {
        text.push_str(&format!("{name} ({time}): {body}\n"));
    }
    if let Some(line) = &rest_line {
        text.push_str(&format!("{line}\n"));
    }
    text.push_str(&format!(
        "\nOpen the conversation: {link}\n\n-- \nYou get these emails for direct messages and mentions left \
         unread for {delay} minutes.\nTurn them off: {unsubscribe}\n"
    ));

    let mut html = format!("<p>You have {}:</p>\n<ul>\n", escape(&subject));
    for (name, time, body) in &quoted {
        html.push_str(&format!("<li><b>{}</b> ({}): {}</li>\n", escape(name), escape(time), escape(body)));
    }
    html.push_str("</ul>\n");
    if let Some(line) = &rest_line {
        html.push_str(&format!("<p>{}</p>\n", escape(line)));
    }
    html.push_str(&format!(
        "<p><a href=\"{}\">Open the conversation</a></p>\n<p style=\"color:#666;font-size:small\">You get \
         these emails for direct messages and mentions left unread for {delay} minutes. \
         <a href=\"{}\">Turn them off</a>.</p>\n",
        escape(&link),
        escape(&unsubscribe)
    ));

    let host = reqwest::Url::parse(&notifier.public_url).ok().and_then(|u| u.host_str().map(str::to_owned));
    let header =
        |name: &'static str, value: String| HeaderValue::new(HeaderName::new_from_ascii_str(name), value);
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{delivery_id}@{}>", host.as_deref().unwrap_or("parley"))))
        .raw_header(header("List-Unsubscribe", format!("<{unsubscribe}>")))
        .raw_header(header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned()))
        .multipart(MultiPart::alternative_plain_html(text, html))
}

/// The first `PREVIEW_CHARS` characters of a body on one line, with `…` when cut.
pub fn preview(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= PREVIEW_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(PREVIEW_CHARS).collect();
    cut.push('…');
    cut
}

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, preview};

    #[test]
    fn a_preview_is_one_line_of_at_most_80_characters() {
        assert_eq!(preview("  hello\n\n  world "), "hello world");
        let long = "é".repeat(100);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), 81);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn html_is_escaped_in_text_and_attributes() {
        assert_eq!(escape(r#"<b onclick="x">&'"#), "&lt;b onclick=&quot;x&quot;&gt;&amp;&#39;");
    }
}
