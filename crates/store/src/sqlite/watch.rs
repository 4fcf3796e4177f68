//! The watch stream: replay from the log, then live events, without a gap or a duplicate.
//!
//! The caller subscribes to the writer's broadcast *before* the first replay read. Everything
//! committed before the subscription is then in the replay's snapshot, and everything committed
//! after it arrives on the broadcast; batches the replay already covered are skipped by revision.
//! A watcher that falls so far behind that the broadcast drops batches (`Lagged`) goes back to
//! the log for what it missed, the same way; if that history was compacted meanwhile the stream
//! yields `Compacted` and ends.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::reader::{self, Readers};
use super::writer::Batch;
use crate::{Error, Event, Result, WatchStream};

/// Events read from the log per query while catching up.
const REPLAY_PAGE: usize = 1024;

/// Starts a watch of `prefix` after `after`, with `live` subscribed beforehand. Fails up front
/// with `Compacted` or `FutureRevision`.
pub(super) async fn open(
    readers: Arc<Readers>,
    live: broadcast::Receiver<Batch>,
    prefix: String,
    after: i64,
) -> Result<WatchStream> {
    let mut state = Watch {
        readers,
        live,
        prefix,
        last: after,
        catching_up: true,
        queue: VecDeque::new(),
        done: false,
    };
    state.catch_up().await?;
    Ok(Box::pin(futures::stream::unfold(
        state,
        |mut state| async move { state.next().await.map(|item| (item, state)) },
    )))
}

struct Watch {
    readers: Arc<Readers>,
    live: broadcast::Receiver<Batch>,
    prefix: String,
    /// Every event at or below this revision has been queued (or did not match the prefix).
    last: i64,
    /// The log may hold events after `last` that the broadcast will not deliver.
    catching_up: bool,
    queue: VecDeque<Event>,
    done: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                if let Err(e) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => self.accept(&batch),
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(Error::Unavailable("sqlite store closed".into())));
                }
            }
        }
    }

    /// Reads the next page of missed events from the log.
    async fn catch_up(&mut self) -> Result<()> {
        let prefix = self.prefix.clone();
        let after = self.last;
        let page = self
            .readers
            .run(move |tx| reader::replay(tx, &prefix, after, REPLAY_PAGE))
            .await?;
        self.queue.extend(page.events);
        self.last = page.covered;
        self.catching_up = page.full;
        Ok(())
    }

    /// Queues the matching events of a live batch that the log replay did not cover.
    fn accept(&mut self, batch: &Batch) {
        let (Some(first), Some(end)) = (batch.first(), batch.last()) else {
            return;
        };
        if end.revision() <= self.last {
            return;
        }
        if first.revision() > self.last + 1 {
            // Batches arrive in commit order with consecutive revisions, so this cannot happen;
            // should it, the log has the missing events.
            self.catching_up = true;
            return;
        }
        let fresh = batch
            .iter()
            .filter(|e| e.revision() > self.last && e.kv.key.starts_with(self.prefix.as_str()));
        self.queue.extend(fresh.cloned());
        self.last = end.revision();
    }
}
