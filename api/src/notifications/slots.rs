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
    ///
    /// An organisation holding more than half its share is passed over until it is back to
    /// half, so that a busy one's rows are claimed in batches, not one per attempt that ends.
    pub fn plan(&self) -> ClaimPlan {
        let holding = self.per_org.len();
        let share = IN_FLIGHT / (holding + 1);
        let allowance: HashMap<Uuid, usize> =
            self.per_org.iter().map(|(org_id, held)| (*org_id, share.saturating_sub(*held))).collect();
        let passed_over = allowance
            .iter()
            .filter(|(_, left)| **left < share.div_ceil(2))
            .map(|(org_id, _)| *org_id)
            .collect();
        ClaimPlan {
            left: IN_FLIGHT - self.tasks.len(),
            allowance,
            passed_over,
            newcomer_share: IN_FLIGHT / (holding + 2),
        }
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
    /// Organisations whose rows the claim does not read.
    passed_over: Vec<Uuid>,
    /// What an organisation holding no slot may take.
    newcomer_share: usize,
}

impl ClaimPlan {
    /// Free slots.
    pub fn free(&self) -> usize {
        self.left
    }

    /// Organisations whose rows the claim does not read: they hold more than half their share.
    pub fn passed_over(&self) -> &[Uuid] {
        &self.passed_over
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
        assert_eq!(taken(&mut plan, a, IN_FLIGHT), IN_FLIGHT / 2);
        assert_eq!(taken(&mut plan, b, IN_FLIGHT), IN_FLIGHT / 2);
        assert_eq!(plan.free(), 0);
    }

    #[tokio::test]
    async fn a_busy_organisation_claims_in_batches() {
        let a = Uuid::new_v4();
        assert_eq!(holding(&[(a, IN_FLIGHT / 4 + 1)]).plan().passed_over(), [a]);
        let mut plan = holding(&[(a, IN_FLIGHT / 4)]).plan();
        assert!(plan.passed_over().is_empty());
        assert_eq!(taken(&mut plan, a, IN_FLIGHT), IN_FLIGHT / 4);
    }

    #[tokio::test]
    async fn organisations_holding_slots_leave_some_to_one_holding_none() {
        let (a, b, c, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut plan = holding(&[(a, IN_FLIGHT / 2)]).plan();
        assert_eq!(plan.passed_over(), [a]);
        assert_eq!(taken(&mut plan, b, IN_FLIGHT), IN_FLIGHT / 3);

        // Two hanging organisations hold their shares: a third still finds the rest.
        let (held_a, held_b) = (IN_FLIGHT / 2, IN_FLIGHT / 3);
        let mut plan = holding(&[(a, held_a), (b, held_b)]).plan();
        assert_eq!(taken(&mut plan, a, IN_FLIGHT) + taken(&mut plan, b, IN_FLIGHT), 0);
        assert_eq!(taken(&mut plan, c, IN_FLIGHT), IN_FLIGHT - held_a - held_b);
        assert_eq!(taken(&mut plan, d, IN_FLIGHT), 0);
    }
}
