//! The delivery worker's slots: the attempts in flight, each a task of its own, and how many
//! of them each organisation holds, so that one organisation's targets (hanging ones, say)
//! can take only its share of the worker.

use std::collections::HashMap;

use tokio::task::{self, JoinSet};
use uuid::Uuid;

use super::worker::IN_FLIGHT;
use entity::notification_deliveries;

/// Slots one organisation holds at most: the other half stays for everyone else.
pub const PER_ORG: usize = IN_FLIGHT / 2;

/// The attempts in flight, each a task of its own (dropped, the set aborts them), and how
/// many of them each organisation holds.
#[derive(Default)]
pub struct Slots {
    pub tasks: JoinSet<()>,
    org_of: HashMap<task::Id, Uuid>,
    per_org: HashMap<Uuid, usize>,
}

impl Slots {
    /// Organisations holding their whole share.
    pub fn saturated(&self) -> Vec<Uuid> {
        self.per_org.iter().filter(|(_, held)| **held >= PER_ORG).map(|(org_id, _)| *org_id).collect()
    }

    /// Splits a claim into the deliveries to attempt, counted, and the ids of those beyond
    /// their organisation's share, to give back.
    pub fn share(
        &mut self,
        claimed: Vec<notification_deliveries::Model>,
    ) -> (Vec<notification_deliveries::Model>, Vec<Uuid>) {
        let (mut kept, mut over) = (Vec::with_capacity(claimed.len()), Vec::new());
        for delivery in claimed {
            let held = self.per_org.entry(delivery.org_id).or_default();
            if *held < PER_ORG {
                *held += 1;
                kept.push(delivery);
            } else {
                over.push(delivery.id);
            }
        }
        (kept, over)
    }

    /// Runs an attempt counted by [`Slots::share`].
    pub fn start(&mut self, org_id: Uuid, attempt: impl Future<Output = ()> + Send + 'static) {
        let task = self.tasks.spawn(attempt);
        self.org_of.insert(task.id(), org_id);
    }

    /// Frees the slot of an attempt that ended (or panicked).
    pub fn ended(&mut self, ended: Result<(task::Id, ()), task::JoinError>) {
        let id = match ended {
            Ok((id, ())) => id,
            Err(error) => {
                tracing::error!(%error, "a delivery attempt panicked; its lease ends and it is tried again");
                error.id()
            }
        };
        let Some(org_id) = self.org_of.remove(&id) else { return };
        if let Some(held) = self.per_org.get_mut(&org_id) {
            *held -= 1;
            if *held == 0 {
                self.per_org.remove(&org_id);
            }
        }
    }
}
