//! What an inbound message says, as the webhook's JSON or the GraphQL input gives it
//! (`RawInbound`), and checked field by field (`Inbound::parse`): an error names the field,
//! which the webhook's 400 answer shows.

use super::contacts::ContactInput;
use crate::error::{ApiError, ApiResult, NUL_REFUSED};
use crate::messages::input::MessageBody;
use crate::messages::record::Attachment;
use entity::enums::MessageSource;

/// An inbound message, parsed.
pub struct Inbound {
    pub external_id: String,
    pub source: MessageSource,
    pub contact: ContactInput,
    pub body: MessageBody,
    pub attachments: Vec<Attachment>,
}

/// An inbound message as the webhook's JSON or the GraphQL input gives it, unchecked.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawInbound {
    pub external_id: Option<String>,
    pub source: Option<String>,
    pub contact: Option<RawContact>,
    pub body: Option<String>,
    #[serde(default)]
    pub attachments: Vec<RawAttachment>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawContact {
    pub external_ref: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAttachment {
    pub name: String,
    pub url: String,
    pub content_type: String,
    pub size: i64,
}

impl RawInbound {
    /// The first field whose text holds NUL, which no backend may store (see `graphql::nul`).
    fn field_holding_nul(&self) -> Option<&'static str> {
        let nul = |text: &Option<String>| text.as_deref().is_some_and(|t| t.contains('\0'));
        let contact = self.contact.as_ref();
        let attachment =
            |a: &RawAttachment| [&a.name, &a.url, &a.content_type].iter().any(|t| t.contains('\0'));
        [
            ("externalId", nul(&self.external_id)),
            ("source", nul(&self.source)),
            (
                "contact",
                contact.is_some_and(|c| [&c.external_ref, &c.phone, &c.email, &c.name].into_iter().any(nul)),
            ),
            ("body", nul(&self.body)),
            ("attachments", self.attachments.iter().any(attachment)),
        ]
        .into_iter()
        .find_map(|(field, holds)| holds.then_some(field))
    }
}

impl Inbound {
    /// Checks every field; an error's message starts with the field it is about
    /// (`externalId: …`), which the webhook's 400 answer names.
    pub fn parse(raw: RawInbound, max_chars: usize, max_attachments: usize) -> ApiResult<Self> {
        if let Some(field) = raw.field_holding_nul() {
            return Err(ApiError::bad_input(format!("{field}: {NUL_REFUSED}")));
        }
        let external_id = raw.external_id.as_deref().map(str::trim).unwrap_or_default();
        if external_id.is_empty() || external_id.chars().count() > 200 {
            return Err(ApiError::bad_input("externalId: 1 to 200 characters"));
        }
        let source = match raw.source.as_deref() {
            Some("sms") => MessageSource::Sms,
            Some("email") => MessageSource::Email,
            Some("api") => MessageSource::Api,
            _ => return Err(ApiError::bad_input("source: one of sms, email, api")),
        };
        let contact = raw.contact.ok_or_else(|| ApiError::bad_input("contact: required"))?;
        let contact = ContactInput::parse(
            contact.external_ref.as_deref(),
            contact.phone.as_deref(),
            contact.email.as_deref(),
            contact.name.as_deref(),
        )?;
        let body = MessageBody::parse(raw.body.as_deref().unwrap_or_default(), max_chars)
            .map_err(|e| ApiError::bad_input(format!("body: {}", e.public_message())))?;
        if raw.attachments.len() > max_attachments {
            return Err(ApiError::bad_input(format!("attachments: at most {max_attachments}")));
        }
        let attachments: Vec<Attachment> = raw
            .attachments
            .into_iter()
            .map(|a| Attachment { name: a.name, url: a.url, content_type: a.content_type, size: a.size })
            .collect();
        if let Some(problem) = attachments.iter().find_map(Attachment::problem) {
            return Err(ApiError::bad_input(format!("attachments: {problem}")));
        }
        Ok(Self { external_id: external_id.to_owned(), source, contact, body, attachments })
    }
}
