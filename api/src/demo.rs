//! Demo data for the first minute: on an empty database, an organisation `demo` with alice,
//! bob, carol and an admin, a public `#general` channel with all of them, a direct room
//! between alice and bob with a few messages, and a support inbox (alice and the admin as
//! agents) with two customers' conversations (`parley sign` posts more).

use std::net::SocketAddr;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, Set};
use uuid::Uuid;

use crate::db::Store;
use crate::rooms::membership;
use crate::rooms::name::ChannelName;
use crate::secrets;
use crate::state::AppState;
use crate::users::input::{DisplayName, EmailAddress, Handle};
use crate::users::service::{self as users, NewUser};
use entity::enums::{
    AssignmentStrategy, ConversationStatus, MemberRole, MessageSource, RoomKind, SenderRole, UserKind,
    UserRole, Visibility,
};
use entity::{
    assignment_decisions, contacts, messages, organizations, rooms, support_inbox_members, support_inboxes,
};

pub struct DemoUser {
    pub handle: String,
    pub display_name: String,
    pub id: Uuid,
    pub org_id: Uuid,
    pub role: UserRole,
}

/// Seeds the demo when no organisation exists yet; returns its users.
pub async fn seed_if_empty(store: &Store) -> anyhow::Result<Option<Vec<DemoUser>>> {
    if organizations::Entity::find().count(&store.db).await? > 0 {
        return Ok(None);
    }
    let org = users::create_org(store, "demo", "Demo").await.context("demo seed")?;
    let mut seeded = Vec::new();
    for (handle, name, role) in [
        ("alice", "Alice Archer", UserRole::Member),
        ("bob", "Bob Baker", UserRole::Member),
        ("carol", "Carol Chen", UserRole::Member),
        ("admin", "Ada Admin", UserRole::Owner),
    ] {
        let (handle, display_name) = (Handle::parse(handle)?, Some(DisplayName::parse(name)?));
        // example.org is reserved for examples (RFC 2606): a demo email goes nowhere real.
        let email = Some(EmailAddress::parse(&format!("{}@example.org", handle.as_str()))?);
        let new = NewUser { handle, display_name, email, role, kind: UserKind::Human };
        let user = users::create(store, org.id, new).await.context("demo seed")?;
        let display_name = user.display_name;
        seeded.push(DemoUser { handle: user.handle, display_name, id: user.id, org_id: org.id, role });
    }
    let (alice, bob) = (seeded[0].id, seeded[1].id);

    let tx = store.begin_write().await?;
    let general_id = Uuid::now_v7();
    room(general_id, org.id, alice, RoomKind::Channel, Some("general"), None).insert(&tx.txn).await?;
    for user in &seeded {
        let role = if user.id == alice { MemberRole::Owner } else { MemberRole::Member };
        membership::insert(&tx.txn, general_id, user.id, role, 0).await.context("demo seed")?;
    }
    let mut pair = [alice, bob];
    pair.sort();
    let dm_key = pair.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
    let dm_id = Uuid::now_v7();
    let dm = room(dm_id, org.id, alice, RoomKind::Direct, None, Some(dm_key));
    dm.clone().insert(&tx.txn).await?;
    let script = [
        (alice, "Hi Bob! Parley is up. Try a subscription in GraphiQL."),
        (bob, "Hey Alice, I see it. Sending from another tab now."),
        (alice, "Messages arrive live, with unread counts."),
    ];
    for (i, (author, body)) in script.iter().enumerate() {
        message(org.id, dm_id, i as i64 + 1, *author, body).insert(&tx.txn).await?;
    }
    let mut dm_room: rooms::ActiveModel = dm.clone();
    dm_room.last_seq = Set(script.len() as i64);
    dm_room.last_message_at = Set(Some(Utc::now()));
    dm_room.update(&tx.txn).await?;
    // Alice wrote the last message, so she has read everything; Bob has one unread.
    for (user, read) in [(alice, 3), (bob, 2)] {
        membership::insert(&tx.txn, dm_id, user, MemberRole::Member, read).await.context("demo seed")?;
    }
    seed_support_inbox(&tx.txn, org.id, &[alice, seeded[3].id]).await.context("demo seed")?;
    tx.commit().await?;
    Ok(Some(seeded))
}

/// A support inbox (round robin over `agents`) with two customers' conversations, one each.
async fn seed_support_inbox(tx: &DatabaseTransaction, org_id: Uuid, agents: &[Uuid]) -> anyhow::Result<()> {
    let now = Utc::now();
    let inbox = support_inboxes::Model {
        id: Uuid::now_v7(),
        org_id,
        name: "Customer support".into(),
        assignment: AssignmentStrategy::RoundRobin,
        agent_capacity: Some(10),
        webhook_secret: secrets::random_hex(),
        outbound_webhook_url: None,
        round_robin_last_agent_id: None,
        created_at: now,
    };
    support_inboxes::ActiveModel::from(inbox.clone()).insert(tx).await?;
    for agent in agents {
        let member = support_inbox_members::Model {
            inbox_id: inbox.id,
            user_id: *agent,
            active: true,
            open_assigned: 1,
            created_at: now,
        };
        support_inbox_members::ActiveModel::from(member).insert(tx).await?;
    }
    let customers = [
        (
            "Dana Diaz",
            Some("+41790000001"),
            None,
            MessageSource::Sms,
            "Hi, my order #1042 has not arrived yet.",
        ),
        (
            "Eli Evans",
            None,
            Some("eli@example.org"),
            MessageSource::Email,
            "Can I still change my delivery address?",
        ),
    ];
    for (i, ((name, phone, email, source, body), agent)) in customers.into_iter().zip(agents).enumerate() {
        let contact = contacts::Model {
            id: Uuid::now_v7(),
            org_id,
            display_name: Some(name.into()),
            phone: phone.map(Into::into),
            email: email.map(Into::into),
            external_ref: None,
            created_at: now,
        };
        contacts::ActiveModel::from(contact.clone()).insert(tx).await?;
        let mut conversation = room(Uuid::now_v7(), org_id, inbox.id, RoomKind::Support, Some(name), None);
        conversation.inbox_id = Set(Some(inbox.id));
        conversation.contact_id = Set(Some(contact.id));
        conversation.assignee_id = Set(Some(*agent));
        conversation.status = Set(Some(ConversationStatus::Open));
        conversation.last_seq = Set(1);
        conversation.last_message_at = Set(Some(now));
        let conversation = conversation.insert(tx).await?;
        let mut first = message(org_id, conversation.id, 1, *agent, body);
        first.author_user_id = Set(None);
        first.author_contact_id = Set(Some(contact.id));
        first.source = Set(source);
        first.external_id = Set(Some(format!("demo-{}", i + 1)));
        first.insert(tx).await?;
        for member in agents {
            membership::insert(tx, conversation.id, *member, MemberRole::Member, 0).await?;
        }
        let decision = assignment_decisions::Model {
            id: Uuid::now_v7(),
            org_id,
            room_id: conversation.id,
            strategy: "round_robin".into(),
            candidates: "[]".into(),
            chosen_id: Some(*agent),
            reason: "next in turn (demo data)".into(),
            decided_at: now,
        };
        assignment_decisions::ActiveModel::from(decision).insert(tx).await?;
    }
    let mut cursor: support_inboxes::ActiveModel = inbox.into();
    cursor.round_robin_last_agent_id = Set(agents.last().copied());
    cursor.update(tx).await?;
    Ok(())
}

fn room(
    id: Uuid,
    org_id: Uuid,
    creator: Uuid,
    kind: RoomKind,
    name: Option<&str>,
    dm_key: Option<String>,
) -> rooms::ActiveModel {
    let visibility = if kind == RoomKind::Channel { Visibility::Public } else { Visibility::Private };
    rooms::ActiveModel {
        id: Set(id),
        org_id: Set(org_id),
        kind: Set(kind),
        name: Set(name.map(str::to_owned)),
        name_key: Set(name
            .filter(|_| kind == RoomKind::Channel)
            .and_then(|name| ChannelName::parse(name).ok())
            .map(|name| name.key())),
        topic: Set(name.map(|_| "Company-wide announcements and chatter".to_owned())),
        visibility: Set(visibility),
        dm_key: Set(dm_key),
        context_ref: Set(None),
        last_seq: Set(0),
        last_message_at: Set(None),
        created_by: Set(creator),
        created_at: Set(Utc::now()),
        archived_at: Set(None),
        deleted_at: Set(None),
        ..Default::default()
    }
}

fn message(org_id: Uuid, room_id: Uuid, seq: i64, author: Uuid, body: &str) -> messages::ActiveModel {
    messages::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(org_id),
        room_id: Set(room_id),
        seq: Set(seq),
        author_user_id: Set(Some(author)),
        author_contact_id: Set(None),
        sender_role: Set(SenderRole::User),
        body: Set(body.to_owned()),
        source: Set(MessageSource::Chat),
        external_id: Set(None),
        client_id: Set(None),
        reply_to_id: Set(None),
        attachments: Set(serde_json::json!([])),
        created_at: Set(Utc::now()),
        edited_at: Set(None),
        deleted_at: Set(None),
    }
}

/// A demo user with a fresh token, for the start-up banner and `/app`'s sign-in buttons.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoLogin {
    pub handle: String,
    pub display_name: String,
    pub token: String,
}

/// Tokens for the demo users, valid 30 days.
pub fn logins(state: &AppState, users: &[DemoUser]) -> anyhow::Result<Vec<DemoLogin>> {
    users
        .iter()
        .map(|user| {
            let role = sea_orm::ActiveEnum::to_value(&user.role);
            let token = state.auth.mint(user.id, user.org_id, &role, 30 * 86_400)?;
            Ok(DemoLogin { handle: user.handle.clone(), display_name: user.display_name.clone(), token })
        })
        .collect()
}

/// Prints, per demo user, links that open GraphiQL and the web client signed in (the token
/// rides in the URL fragment, which browsers never send to a server) and a ready header.
pub fn print_welcome(addr: SocketAddr, logins: &[DemoLogin], pages: bool) {
    println!("\nParley demo seeded. Tokens below are valid 30 days.");
    if pages {
        println!("GraphiQL: http://{addr}/   web client: http://{addr}/app");
    }
    for DemoLogin { handle, token, .. } in logins {
        println!("  {handle}");
        if pages {
            println!("    GraphiQL:   http://{addr}/#token={token}");
            println!("    web client: http://{addr}/app#token={token}");
        }
        println!("    header:     {{\"Authorization\": \"Bearer {token}\"}}");
    }
    println!();
}
