//! The watcher against the in-process bus, with the database's membership answers faked.

use std::time::Duration;

use tokio::time::{Instant, timeout};

use super::*;
use crate::bus::{MembershipChange, RoomChange};

/// A room-less user event, as a read on another device sends.
fn user_event() -> Event {
    Event::MuteChanged { room_id: Uuid::now_v7() }
}

/// The database's answer to every membership check: member or not, or no answer.
struct Answer(Option<bool>);

#[async_trait]
impl MembershipCheck for Answer {
    async fn is_member(&self, _: Uuid, _: Uuid) -> Option<bool> {
        self.0
    }
}

async fn start(bus: &EventBus, viewer: Uuid, answer: Option<bool>) -> Watcher {
    Watcher::start(bus, viewer, Scope::AllRooms, Box::new(Answer(answer))).await
}

fn membership(room_id: Uuid, change: MembershipChange) -> Event {
    Event::MembershipChanged { room_id, change, seq: 1 }
}

#[tokio::test]
async fn a_retry_comes_once_after_a_backoff_while_events_keep_flowing() {
    let bus = EventBus::in_process();
    let viewer = Uuid::now_v7();
    let mut watcher = start(&bus, viewer, Some(true)).await;
    let asked = Instant::now();
    watcher.retry_later();
    watcher.retry_later();
    bus.publish(Topic::User(viewer), user_event()).await;

    assert!(matches!(watcher.next().await, Some(Watched::User(_))), "the event does not wait");
    assert!(matches!(watcher.next().await, Some(Watched::Retry)));
    assert!(asked.elapsed() >= Duration::from_millis(25), "after the backoff: {:?}", asked.elapsed());
    assert!(
        timeout(Duration::from_millis(200), watcher.next()).await.is_err(),
        "one retry, however often asked"
    );
}

/// A removal published before the room's next event is applied first, although both are
/// waiting when the watcher is read: the room is no longer followed, so its event is not
/// yielded at all.
#[tokio::test]
async fn a_removal_waiting_beside_the_rooms_next_event_wins() {
    let bus = EventBus::in_process();
    for _ in 0..32 {
        let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watcher = start(&bus, viewer, Some(false)).await;
        watcher.follow(room_id).await;
        bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Revoked)).await;
        bus.publish(Topic::Room(room_id), Event::RoomChanged { room_id, change: RoomChange::Renamed }).await;

        assert!(matches!(watcher.next().await, Some(Watched::User(_))));
        assert!(watcher.rooms().is_empty());
        assert!(timeout(Duration::from_millis(20), watcher.next()).await.is_err(), "nothing of the room");
    }
}

#[tokio::test]
async fn the_backoff_grows_while_each_retry_fails() {
    let bus = EventBus::in_process();
    let mut watcher = start(&bus, Uuid::now_v7(), Some(true)).await;
    let started = Instant::now();
    for _ in 0..3 {
        // Each retry fails again at once: asked for before the watcher is read again.
        watcher.retry_later();
        assert!(matches!(watcher.next().await, Some(Watched::Retry)));
    }
    // 25–50, then 50–100, then 100–200 ms.
    assert!(started.elapsed() >= Duration::from_millis(175), "{:?}", started.elapsed());
}

/// An addition on one instance and a removal on another, whose events arrive in the other
/// order: the addition comes last, and the database, which says the viewer is no longer a
/// member, has it dropped.
#[tokio::test]
async fn a_join_the_database_denies_is_dropped_and_its_room_not_followed() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let mut watcher = start(&bus, viewer, Some(false)).await;
    bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Joined)).await;
    bus.publish(Topic::User(viewer), user_event()).await;

    let next = watcher.next().await;
    assert!(
        matches!(&next, Some(Watched::User(e)) if matches!(e.event, Event::MuteChanged { .. })),
        "the join is not yielded: {next:?}"
    );
    assert!(watcher.rooms().is_empty(), "the room is not followed");
}

/// The other way round: a removal older than the viewer's rejoin keeps the room followed.
#[tokio::test]
async fn a_removal_the_database_denies_is_dropped_and_its_room_kept() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let mut watcher = start(&bus, viewer, Some(true)).await;
    watcher.follow(room_id).await;
    bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Revoked)).await;
    bus.publish(Topic::User(viewer), user_event()).await;

    let next = watcher.next().await;
    assert!(
        matches!(&next, Some(Watched::User(e)) if matches!(e.event, Event::MuteChanged { .. })),
        "the removal is not yielded: {next:?}"
    );
    assert_eq!(watcher.rooms(), vec![room_id]);
}

/// Unconfirmed, a membership event leaves the room unfollowed and asks for a resync, whose
/// repair reads membership again.
#[tokio::test]
async fn a_membership_event_the_database_cannot_confirm_resyncs() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let mut watcher = start(&bus, viewer, None).await;
    watcher.follow(room_id).await;
    bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Joined)).await;

    assert!(matches!(watcher.next().await, Some(Watched::Resync(_))));
    assert!(watcher.rooms().is_empty());
    assert_eq!(watcher.take_unconfirmed(), [room_id], "for the repair to decide");
    assert!(watcher.take_unconfirmed().is_empty());
}

/// A lag loses only events published after the watcher last found nothing waiting, and
/// its resync says so.
#[tokio::test]
async fn a_lag_resyncs_from_when_the_watcher_last_caught_up() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let mut watcher = start(&bus, viewer, Some(true)).await;
    watcher.follow(room_id).await;
    let renamed = || Event::RoomChanged { room_id, change: RoomChange::Renamed };
    bus.publish(Topic::Room(room_id), renamed()).await;
    assert!(matches!(watcher.next().await, Some(Watched::Room(..))));

    let before = Utc::now();
    assert!(timeout(Duration::from_millis(20), watcher.next()).await.is_err(), "caught up");
    let caught_up = Utc::now();
    for _ in 0..200 {
        bus.publish(Topic::Room(room_id), renamed()).await;
    }
    match watcher.next().await {
        Some(Watched::Resync(Some(lost_after))) => {
            assert!(before <= lost_after && lost_after <= caught_up, "{before} {lost_after} {caught_up}");
        }
        other => panic!("a resync from when it caught up, not {other:?}"),
    }
}

/// A bus resync carries its moment; several waiting at once make one resync, from the
/// earliest.
#[tokio::test]
async fn resyncs_waiting_together_resync_once_from_the_earliest_moment() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let mut watcher = start(&bus, viewer, Some(true)).await;
    watcher.follow(room_id).await;
    let (later, earlier) = (Utc::now(), Utc::now() - chrono::TimeDelta::seconds(5));
    bus.hub.resync_all(Some(later));
    bus.hub.resync_all(Some(earlier));

    assert!(matches!(watcher.next().await, Some(Watched::Resync(Some(at))) if at == earlier));
    assert!(timeout(Duration::from_millis(20), watcher.next()).await.is_err(), "one resync");
}

/// A database that answers after `delay`.
struct SlowAnswer(bool, Duration);

#[async_trait]
impl MembershipCheck for SlowAnswer {
    async fn is_member(&self, _: Uuid, _: Uuid) -> Option<bool> {
        tokio::time::sleep(self.1).await;
        Some(self.0)
    }
}

/// A caller that stops waiting while a membership event is checked (a feed racing a timer)
/// loses nothing: the event is checked again and applied on the next call.
#[tokio::test]
async fn a_membership_check_cut_short_is_made_again() {
    let bus = EventBus::in_process();
    let (viewer, room_id) = (Uuid::now_v7(), Uuid::now_v7());
    let slow = Box::new(SlowAnswer(false, Duration::from_millis(50)));
    let mut watcher = Watcher::start(&bus, viewer, Scope::Room(room_id), slow).await;
    watcher.follow(room_id).await;
    bus.publish(Topic::User(viewer), membership(room_id, MembershipChange::Revoked)).await;

    assert!(timeout(Duration::from_millis(10), watcher.next()).await.is_err(), "cut short");
    let next = timeout(Duration::from_secs(1), watcher.next()).await.expect("the removal, checked again");
    assert!(matches!(&next, Some(Watched::User(e)) if matches!(e.event, Event::MembershipChanged { .. })));
    assert!(watcher.rooms().is_empty());
}
