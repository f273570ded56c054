//! `RereadWindow`: from when a feed that recovers lost changes by the moment they were made
//! (`messageUpdated`, `roomUpdated`) rereads after a resync. Not from its start: a
//! subscription open for days would reread days of changes at its first Redis blip. A
//! change made before the previous reread was read by it; one made before the moment the
//! resync says the loss began (`LostAfter`) reached the feed as an event. Both less
//! [`REREAD_OVERLAP`].

use chrono::{DateTime, TimeDelta, Utc};

use super::hub::LostAfter;

/// How far a reread reaches back past the moments above: a change is stamped by the
/// instance that made it, by that instance's clock, and committed and published a little
/// later.
pub const REREAD_OVERLAP: TimeDelta = TimeDelta::seconds(2);

#[derive(Debug)]
pub struct RereadWindow {
    /// Changes stamped before this moment were read by the last reread to begin, or are
    /// older than the feed.
    since: DateTime<Utc>,
    /// A reread resyncs asked for that has not begun (it waits for a membership repair, or
    /// for a retry): of the changes stamped after this moment.
    due: Option<DateTime<Utc>>,
}

impl RereadWindow {
    /// A window for a feed starting now: it reads nothing older.
    pub fn starting_now() -> Self {
        Self { since: Utc::now() - REREAD_OVERLAP, due: None }
    }

    /// A resync came: events published after `lost_after` may have been lost. Resyncs before
    /// the reread begins share it, from the earliest moment any of them needs.
    pub fn resync(&mut self, lost_after: LostAfter) {
        let from = lost_after.map_or(self.since, |lost| self.since.max(lost - REREAD_OVERLAP));
        self.due = Some(self.due.map_or(from, |due| due.min(from)));
    }

    /// The reread due, if any, beginning now: of the changes stamped after the moment
    /// returned. It reads the database as it stands, so what is stamped before now is
    /// behind the window from here on.
    pub fn begin(&mut self) -> Option<DateTime<Utc>> {
        let due = self.due.take()?;
        self.since = Utc::now() - REREAD_OVERLAP;
        Some(due)
    }

    /// The reread begun from `from` failed before it read anything: it is due again.
    pub fn failed(&mut self, from: DateTime<Utc>) {
        self.due = Some(self.due.map_or(from, |due| due.min(from)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ago(seconds: i64) -> DateTime<Utc> {
        Utc::now() - TimeDelta::seconds(seconds)
    }

    #[test]
    fn a_loss_of_unknown_start_rereads_since_the_previous_reread() {
        let since = ago(3_600);
        let mut window = RereadWindow { since, due: None };
        window.resync(None);
        assert_eq!(window.begin(), Some(since));
        assert_eq!(window.begin(), None, "once");
    }

    /// The moment a loss began bounds the reread: an hour-old subscription rereads seconds.
    #[test]
    fn a_loss_of_known_start_rereads_from_it() {
        let since = ago(3_600);
        let lost_after = ago(10);
        let mut window = RereadWindow { since, due: None };
        window.resync(Some(lost_after));
        assert_eq!(window.begin(), Some(lost_after - REREAD_OVERLAP));
        // Never further back than the previous reread, however early the loss began.
        let mut window = RereadWindow { since, due: None };
        window.resync(Some(ago(7_200)));
        assert_eq!(window.begin(), Some(since));
    }

    #[test]
    fn resyncs_before_the_reread_begins_share_it_from_the_earliest_moment() {
        let mut window = RereadWindow { since: ago(3_600), due: None };
        let (later, earlier) = (ago(30), ago(60));
        window.resync(Some(later));
        window.resync(Some(earlier));
        assert_eq!(window.begin(), Some(earlier - REREAD_OVERLAP));
        // The next resync rereads from this reread on, not from the hour-old start.
        window.resync(None);
        assert!(window.begin().is_some_and(|due| due > ago(5)));
    }

    #[test]
    fn a_failed_reread_is_due_again_from_where_it_began() {
        let since = ago(3_600);
        let mut window = RereadWindow { since, due: None };
        window.resync(None);
        let from = window.begin().expect("a reread due");
        window.failed(from);
        // A resync meanwhile does not move it later.
        window.resync(Some(ago(1)));
        assert_eq!(window.begin(), Some(since));
    }
}
