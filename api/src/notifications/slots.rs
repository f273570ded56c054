//! The delivery worker's slots: the attempts in flight, each a task of its own, and how many
//! of them each organisation holds, so that one organisation's targets (hanging ones, say)
//! can take only a share of the worker.

use std::collections::HashMap;

use tokio::task::{self, JoinSet};
use uuid::Uuid;

use super::worker::IN_FLIGHT;

/// The attempts in flight, each a task of its own (dropped, the set aborts them), and how
/// many of them each organisation holds.
#[derive(Default)]
pub struct Slots {
    pub tasks: JoinSet<()>,
    org_of: HashMap<task::Id, Uuid>,
    per_org: HashMap<Uuid, usize>,
}

impl Slots {
    /// What the next claim may take: every free slot, and of one organisation at most an
    /// equal share among those holding slots, itself counted, and one more (so half the slots
    /// while no other holds any): some are left for an organisation that holds none. One
    /// organisation's hanging targets slow only it; it takes three at once to fill the worker
    /// until their attempts time out.
    pub fn plan(&self) -> ClaimPlan {
        let holding = self.per_org.len();
        let allowance = self
            .per_org
            .iter()
            .map(|(org_id, held)| (*org_id, (IN_FLIGHT / (holding + 1)).saturating_sub(*held)))
            .collect();
        ClaimPlan { left: IN_FLIGHT - self.tasks.len(), allowance, newcomer_share: IN_FLIGHT / (holding + 2) }
    }

    /// Runs an attempt of `org_id`'s, holding a slot until it ends.
    pub fn start(&mut self, org_id: Uuid, attempt: impl Future<Output = ()> + Send + 'static) {
        let task = self.tasks.spawn(attempt);
        self.org_of.insert(task.id(), org_id);
        *self.per_org.entry(org_id).or_default() += 1;
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

/// How many deliveries a claim may take, in all and of each organisation.
pub struct ClaimPlan {
    left: usize,
    allowance: HashMap<Uuid, usize>,
    /// What an organisation holding no slot may take.
    newcomer_share: usize,
}

impl ClaimPlan {
    /// Free slots.
    pub fn free(&self) -> usize {
        self.left
    }

    /// Organisations that may take nothing now, for the claim to pass over their rows.
    pub fn saturated(&self) -> Vec<Uuid> {
        self.allowance.iter().filter(|(_, left)| **left == 0).map(|(org_id, _)| *org_id).collect()
    }

    /// Whether a due delivery of `org_id`'s fits, counting it if so.
    pub fn take(&mut self, org_id: Uuid) -> bool {
        let allowance = self.allowance.entry(org_id).or_insert(self.newcomer_share);
        if self.left == 0 || *allowance == 0 {
            return false;
        }
        *allowance -= 1;
        self.left -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(orgs: &[(Uuid, usize)]) -> Slots {
        let mut slots = Slots::default();
        for (org_id, held) in orgs {
            for _ in 0..*held {
                slots.start(*org_id, std::future::pending());
            }
        }
        slots
    }

    fn taken(plan: &mut ClaimPlan, org_id: Uuid, wanted: usize) -> usize {
        (0..wanted).filter(|_| plan.take(org_id)).count()
    }

    #[tokio::test]
    async fn one_organisation_takes_half_of_an_idle_worker() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut plan = holding(&[]).plan();
        assert_eq!(taken(&mut plan, a, 20), IN_FLIGHT / 2);
        assert_eq!(taken(&mut plan, b, 20), IN_FLIGHT / 2);
        assert_eq!(plan.free(), 0);
    }

    #[tokio::test]
    async fn organisations_holding_slots_leave_some_to_one_holding_none() {
        let (a, b, c, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut plan = holding(&[(a, 8)]).plan();
        assert_eq!(plan.saturated(), vec![a]);
        assert_eq!(taken(&mut plan, b, 20), IN_FLIGHT / 3);

        // Two hanging organisations hold 8 and 5 of 16: a third still finds 3.
        let mut plan = holding(&[(a, 8), (b, 5)]).plan();
        assert_eq!(taken(&mut plan, a, 20) + taken(&mut plan, b, 20), 0);
        assert_eq!(taken(&mut plan, c, 20), 3);
        assert_eq!(taken(&mut plan, d, 20), 0);
    }
}
