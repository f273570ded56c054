//! The recency window: search ranks an organisation's newest messages first.
//!
//! A GIN index says which rows hold a word, but neither their rank nor their age, so ranking
//! every match of a common word fetches each one from the heap: 20 000 rows for a word in 2 %
//! of a million messages, 150 ms. Search therefore ranks in two tiers, as Slack's "most
//! relevant" weighs recency: first the organisation's newest `window` messages (ids at or above
//! a floor), then everything older. PostgreSQL ANDs the word's bitmap with the
//! `messages_org_id` range of the window, so only the matches inside it are read and ranked;
//! the older tier is searched only when the newest cannot fill a page.
//!
//! The floor is the id of the organisation's `window`-th newest message (ids are UUIDv7, so id
//! order is sending order), found through the index and cached for [`FLOOR_TTL`]: a floor a
//! little old only makes the first tier a little larger. A cursor carries the floor its first
//! page used, so pages never overlap or skip while new messages arrive.

use std::time::Duration;

use moka::future::Cache;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::db::Store;
use crate::error::{ApiError, ApiResult};

/// How long a floor is reused before it is looked up again.
const FLOOR_TTL: Duration = Duration::from_secs(30);

/// Where each organisation's window begins.
#[derive(Clone)]
pub struct SearchWindows {
    size: u64,
    floors: Cache<Uuid, Option<Uuid>>,
}

impl SearchWindows {
    /// Windows of the newest `size` messages of each organisation.
    pub fn new(size: u64) -> Self {
        Self { size, floors: Cache::builder().max_capacity(10_000).time_to_live(FLOOR_TTL).build() }
    }

    /// The id at which `org`'s window begins, or `None` while the organisation has no more
    /// messages than the window holds (one tier: all of them).
    pub async fn floor(&self, store: &Store, org: Uuid) -> ApiResult<Option<Uuid>> {
        let size = self.size;
        self.floors
            .try_get_with(org, async move {
                let row = store
                    .db
                    .query_one_raw(store.stmt(
                        "SELECT id FROM messages WHERE org_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
                        vec![org.into(), (size.saturating_sub(1) as i64).into()],
                    ))
                    .await?;
                row.map(|row| row.try_get::<Uuid>("", "id")).transpose()
            })
            .await
            .map_err(|err| ApiError::internal(anyhow::anyhow!("search window floor: {err}")))
    }
}
