//! Contacts: who writes to a support inbox. Parsed from what an inbound message says of its
//! sender (phone normalised to E.164, email lower-cased), and upserted by the first of
//! external reference, phone and email that matches a stored contact, read together with
//! their conversation in the inbox the message came to (one SQL text, `best_match_sql`);
//! what the message gives and the contact lacks is filled in (`fill_in`).

use std::sync::LazyLock;

use sea_orm::{
    ActiveModelTrait, ConnectionTrait, FromQueryResult, IdenStatic, Iterable, Set, Statement, Value,
};
use uuid::Uuid;

use crate::db::{self, columns};
use crate::error::{ApiError, ApiResult};
use crate::users::input::EmailAddress;
use entity::enums::MessageSource;
use entity::{contacts, rooms};

/// Longest contact name, in characters.
const MAX_NAME: usize = 120;

/// What an inbound message says of its sender, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactInput {
    pub external_ref: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl ContactInput {
    pub fn parse(
        external_ref: Option<&str>,
        phone: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
    ) -> ApiResult<Self> {
        let present = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let external_ref = present(external_ref);
        if external_ref.as_ref().is_some_and(|r| r.chars().count() > 200) {
            return Err(ApiError::bad_input("contact.externalRef: at most 200 characters"));
        }
        let phone = present(phone).map(|p| e164(&p)).transpose()?;
        let email = present(email)
            .map(|e| EmailAddress::parse(&e).map(EmailAddress::into_string))
            .transpose()
            .map_err(|_| ApiError::bad_input("contact.email: not an email address"))?;
        let name = present(name);
        if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
            return Err(ApiError::bad_input(format!("contact.name: at most {MAX_NAME} characters")));
        }
        if external_ref.is_none() && phone.is_none() && email.is_none() {
            return Err(ApiError::bad_input("contact: give externalRef, phone or email"));
        }
        Ok(Self { external_ref, phone, email, name })
    }
}

/// What a contact is called: their name, else the first of phone, email and external
/// reference they gave (inbound messages give at least one).
pub fn label(contact: &contacts::Model) -> &str {
    [&contact.display_name, &contact.phone, &contact.email, &contact.external_ref]
        .into_iter()
        .find_map(|v| v.as_deref())
        .unwrap_or("a customer")
}

/// A phone number in E.164: `+`, then 8 to 15 digits. Spaces, dashes, dots and parentheses
/// are dropped and a leading `00` reads as `+`; a number without its country code is refused
/// (guessing the country would merge two customers).
pub fn e164(raw: &str) -> ApiResult<String> {
    let kept: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = kept.strip_prefix('+').or_else(|| kept.strip_prefix("00"));
    match digits {
        Some(d)
            if (8..=15).contains(&d.len())
                && d.chars().all(|c| c.is_ascii_digit())
                && !d.starts_with('0') =>
        {
            Ok(format!("+{d}"))
        }
        _ => Err(ApiError::bad_input("contact.phone: an international number, e.g. +41 44 668 18 00")),
    }
}

/// The contact an inbound message names, and their conversation in an inbox (its columns
/// prefixed `r_`, null when there is none). `input` names, as SQL, the organisation, the
/// inbox, the external reference, the phone and the email (each null when not given):
/// placeholders for [`find`], the columns of a batch's input for `settled`. The first of
/// external reference, phone and email that matches a stored contact decides. One text for
/// both uses, so that they cannot pick different contacts.
pub fn best_match_sql([org, inbox, external_ref, phone, email]: [&str; 5]) -> String {
    format!(
        "SELECT {contact}, {room} FROM contacts c \
         LEFT JOIN rooms r ON r.contact_id = c.id AND r.inbox_id = {inbox} \
         WHERE c.org_id = {org} AND (c.external_ref = {external_ref} OR c.phone = {phone} OR c.email = {email}) \
         ORDER BY CASE WHEN c.external_ref = {external_ref} THEN 0 WHEN c.phone = {phone} THEN 1 ELSE 2 END \
         LIMIT 1",
        contact = columns::<contacts::Entity>(Some("c")),
        room = rooms::Column::iter()
            .map(|c| format!("r.\"{0}\" AS \"r_{0}\"", c.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The contact this input names, with their conversation in `inbox_id` if they have one;
/// `None` when no contact matches.
pub async fn find(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
    inbox_id: Uuid,
    input: &ContactInput,
) -> ApiResult<Option<(contacts::Model, Option<rooms::Model>)>> {
    static SQL: LazyLock<String> = LazyLock::new(|| best_match_sql(["$1", "$2", "$3", "$4", "$5"]));
    let values: Vec<Value> = vec![
        org_id.into(),
        inbox_id.into(),
        input.external_ref.clone().into(),
        input.phone.clone().into(),
        input.email.clone().into(),
    ];
    let statement = Statement::from_sql_and_values(conn.get_database_backend(), SQL.as_str(), values);
    let Some(row) = conn.query_one_raw(statement).await? else { return Ok(None) };
    let contact = contacts::Model::from_query_result(&row, "")?;
    let room = match row.try_get::<Option<Uuid>>("", "r_id")? {
        Some(_) => Some(rooms::Model::from_query_result(&row, "r_")?),
        None => None,
    };
    Ok(Some((contact, room)))
}

/// Whether a message from `input` may teach `contact` something: a name it lacks, or the
/// address the message came by (`vouched`). `settled`'s statement asks the same in SQL, and
/// leaves such a message to the transactional way.
fn needs_update(contact: &contacts::Model, input: &ContactInput, source: MessageSource) -> bool {
    let new = |have: &Option<String>, given: &Option<String>| have.is_none() && given.is_some();
    let vouched = vouched(input, source);
    new(&contact.display_name, &input.name)
        || new(&contact.phone, &vouched.phone)
        || new(&contact.email, &vouched.email)
        || new(&contact.external_ref, &vouched.external_ref)
}

/// Of the phone, email and reference `input` gives, the one its channel vouches for: the
/// number an SMS came from, the address an email came from, the gateway's own reference of
/// an API message. Only that one is filled in: a message giving someone's email beside its
/// own number must not send SMS replies of that person's conversation to its number.
fn vouched(input: &ContactInput, source: MessageSource) -> ContactInput {
    let only = |wanted: MessageSource, value: &Option<String>| value.clone().filter(|_| source == wanted);
    ContactInput {
        phone: only(MessageSource::Sms, &input.phone),
        email: only(MessageSource::Email, &input.email),
        external_ref: only(MessageSource::Api, &input.external_ref),
        name: input.name.clone(),
    }
}

/// The contact this input (of a message that came by `source`) names, with what is new
/// filled in, or a new one; and their conversation in `inbox_id` if they have one. Inside the
/// caller's transaction.
pub async fn upsert(
    conn: &impl ConnectionTrait,
    org_id: Uuid,
    inbox_id: Uuid,
    input: &ContactInput,
    source: MessageSource,
) -> ApiResult<(contacts::Model, Option<rooms::Model>)> {
    match find(conn, org_id, inbox_id, input).await? {
        Some((contact, conversation)) => {
            if !needs_update(&contact, input, source) {
                return Ok((contact, conversation));
            }
            Ok((fill_in(conn, contact, &vouched(input, source)).await?, conversation))
        }
        None => {
            let contact = contacts::Model {
                id: Uuid::now_v7(),
                org_id,
                display_name: input.name.clone(),
                phone: input.phone.clone(),
                email: input.email.clone(),
                external_ref: input.external_ref.clone(),
                created_at: db::now(),
            };
            Ok((contacts::ActiveModel::from(contact).insert(conn).await?, None))
        }
    }
}

/// `contact` with what `input` (vouched for) gives and it lacks filled in: an SMS from the
/// customer who wrote by email leaves their phone, so that an agent's reply can go by SMS. Never
/// overwrites (a name given once stays), and leaves a phone, email or reference that another
/// contact holds with that contact (each is unique in an organisation; merging contacts is
/// for an admin to decide).
async fn fill_in(
    conn: &impl ConnectionTrait,
    contact: contacts::Model,
    input: &ContactInput,
) -> ApiResult<contacts::Model> {
    let sql = "SELECT phone, email, external_ref FROM contacts \
               WHERE org_id = $1 AND (phone = $2 OR email = $3 OR external_ref = $4)";
    let values: Vec<Value> = vec![
        contact.org_id.into(),
        input.phone.clone().into(),
        input.email.clone().into(),
        input.external_ref.clone().into(),
    ];
    let held =
        conn.query_all_raw(Statement::from_sql_and_values(conn.get_database_backend(), sql, values)).await?;
    let held_by_another = |column: &str, value: &Option<String>| {
        held.iter().any(|row| row.try_get::<Option<String>>("", column).ok().flatten() == *value)
    };
    let pick = |have: &Option<String>, given: &Option<String>, column: &str| match have {
        Some(_) => have.clone(),
        None if held_by_another(column, given) => None,
        None => given.clone(),
    };
    let filled = contacts::Model {
        display_name: contact.display_name.clone().or_else(|| input.name.clone()),
        phone: pick(&contact.phone, &input.phone, "phone"),
        email: pick(&contact.email, &input.email, "email"),
        external_ref: pick(&contact.external_ref, &input.external_ref, "external_ref"),
        ..contact.clone()
    };
    if filled == contact {
        return Ok(contact);
    }
    let mut change: contacts::ActiveModel = contact.into();
    change.display_name = Set(filled.display_name);
    change.phone = Set(filled.phone);
    change.email = Set(filled.email);
    change.external_ref = Set(filled.external_ref);
    Ok(change.update(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::{ContactInput, e164};

    #[test]
    fn phones_become_e164() {
        assert_eq!(e164("+41 44 668-18.00").ok().as_deref(), Some("+41446681800"));
        assert_eq!(e164("0041 (44) 668 18 00").ok().as_deref(), Some("+41446681800"));
        for bad in ["044 668 18 00", "+12", "+1234567890123456", "+41 44 abc", "+0441234567"] {
            assert!(e164(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_contact_needs_something_to_be_found_by() {
        assert!(ContactInput::parse(None, None, None, Some("Dana")).is_err());
        let parsed = ContactInput::parse(None, None, Some(" Dana@Example.org "), Some(" Dana ")).ok();
        assert_eq!(parsed.as_ref().and_then(|c| c.email.as_deref()), Some("dana@example.org"));
        assert_eq!(parsed.as_ref().and_then(|c| c.name.as_deref()), Some("Dana"));
        assert!(ContactInput::parse(None, None, Some("nope"), None).is_err());
    }
}
