//! `Retry`: a subscription's second try at a database read that failed. What the read was to
//! deliver is read again after a backoff (25–50 ms after a blip, growing to a second while
//! reads keep failing: when the database is down every subscription retries, and they must
//! not hammer it), so a failed read delays a delivery and never drops one. Counted in
//! `parley_feed_retries_total`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::Sleep;

use super::link::Backoff;

#[derive(Default)]
pub struct Retry {
    /// The pending retry, due when this sleep ends.
    due: Option<Pin<Box<Sleep>>>,
    backoff: Backoff,
}

impl Retry {
    /// Schedules a retry after the backoff, unless one is pending already.
    pub fn later(&mut self) {
        if self.due.is_none() {
            metrics::counter!("parley_feed_retries_total").increment(1);
            self.due = Some(Box::pin(tokio::time::sleep(self.backoff.next_delay())));
        }
    }

    /// Whether a retry is pending.
    pub fn is_pending(&self) -> bool {
        self.due.is_some()
    }

    /// Drops a pending retry: the caller rereads everything anyway.
    pub fn cancel(&mut self) {
        self.due = None;
    }

    /// Nothing failed since the last retry: the next failure starts with a short delay again.
    pub fn settle(&mut self) {
        if self.due.is_none() {
            self.backoff = Backoff::default();
        }
    }

    /// Resolves when the pending retry is due, and clears it; never while none is pending.
    /// Cancel-safe: a cancelled wait keeps the retry.
    pub async fn due(&mut self) {
        std::future::poll_fn(|cx| self.poll_due(cx)).await;
    }

    /// [`Self::due`] as a poll, for a caller that polls several sources by hand.
    pub fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.due.as_mut() else { return Poll::Pending };
        ready!(sleep.as_mut().poll(cx));
        self.due = None;
        Poll::Ready(())
    }
}
