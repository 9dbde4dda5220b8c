//! Keeps the snapshot current when other processes write to the same database: PostgreSQL's
//! NOTIFY (sent by the version bump's trigger) answers within milliseconds, and a poll of the
//! version every second catches whatever a dropped listener missed. While the database is
//! away the last snapshot keeps serving; the outage is logged when it starts and when it ends.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::Registry;
use crate::store::Db;

/// The channel the version bump's trigger notifies (migrations/postgres).
const CHANNEL: &str = "hearth_registry";
/// The safety net: how stale a snapshot can get when notifications are lost.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A listener connection that does not come up in this time is retried on a later tick.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(2);

impl Registry {
    /// Starts the task that reloads the snapshot after writes by other processes. It ends
    /// once the registry is closed.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move { registry.watch_loop().await })
    }

    async fn watch_loop(&self) {
        let mut listener: Option<PgListener> = None;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reachable = true;
        loop {
            if self.db.is_closed() {
                return;
            }
            if let (Db::Postgres(pool), None) = (&self.db, &listener) {
                listener = listen(pool).await;
            }
            match listener.as_mut() {
                Some(l) => {
                    tokio::select! {
                        received = l.recv() => {
                            if received.is_err() {
                                // Reconnected on a later tick; the poll covers the gap.
                                listener = None;
                            }
                        }
                        _ = tick.tick() => {}
                    }
                }
                None => {
                    tick.tick().await;
                }
            }
            if self.db.is_closed() {
                return;
            }
            match self.refresh().await {
                Ok(reloaded) => {
                    if !reachable {
                        reachable = true;
                        tracing::info!(
                            database = %self.database,
                            "the database answers again; changes made meanwhile are loaded"
                        );
                    }
                    if reloaded {
                        tracing::debug!(
                            version = self.snapshot.load().version,
                            "registry reloaded after a change by another process"
                        );
                    }
                }
                Err(e) => {
                    if reachable {
                        reachable = false;
                        tracing::warn!(
                            database = %self.database, error = %e,
                            "lost the database: serving the last loaded registry until it is back"
                        );
                    }
                    // A dead listener would otherwise only notice at its next read.
                    listener = None;
                }
            }
        }
    }
}

async fn listen(pool: &sqlx::PgPool) -> Option<PgListener> {
    let attempt = async {
        let mut listener = PgListener::connect_with(pool).await.ok()?;
        listener.listen(CHANNEL).await.ok()?;
        Some(listener)
    };
    tokio::time::timeout(LISTEN_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}
