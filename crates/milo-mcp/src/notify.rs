//! Live updates: one coalescing watcher per subscribed resource.
//!
//! A watcher follows the hub's current run (switching when a new run is attached or started)
//! and that run's store. When the resource's content changes it sends
//! `notifications/resources/updated`, at most once per [`MIN_INTERVAL`]: changes inside the
//! interval are folded into one notification at its end, so the newest state is always
//! announced. A change that leaves the run in a final state is sent at once.

use std::sync::Arc;
use std::time::Duration;

use milo::pipeline::{PipelineState, Status};
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, RoleServer, SubscriptionSink};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::resources::ResourceKey;

/// The shortest time between two notifications about one resource (so at most 10 a second).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where a watcher's notifications go.
#[derive(Clone)]
pub(crate) enum Target {
    /// A legacy `resources/subscribe` session: plain notifications to the peer.
    Peer(Peer<RoleServer>),
    /// A `subscriptions/listen` stream.
    Sink(SubscriptionSink),
}

impl Target {
    /// Sends the update; `false` once the receiver is gone.
    async fn send(&self, uri: &str) -> bool {
        let result = match self {
            Target::Peer(peer) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
                .map_err(|e| e.to_string()),
            Target::Sink(sink) => sink.notify_resource_updated(uri).await.map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(uri, %error, "stopping resource updates");
                false
            }
        }
    }
}

/// What a resource's content depends on, to tell whether it changed.
enum Fingerprint {
    NoRun,
    Timeline {
        run: u64,
        active: bool,
        state: Arc<PipelineState>,
    },
    Logs {
        run: u64,
        active: bool,
        count: u64,
        status: Option<Status>,
    },
}

impl Fingerprint {
    fn of(hub: &Hub, key: &ResourceKey) -> Fingerprint {
        let Some(run) = hub.current() else {
            return Fingerprint::NoRun;
        };
        let state = run.state();
        let active = run.is_active();
        match key {
            ResourceKey::Logs(name) => {
                let phase = state.phase(name);
                Fingerprint::Logs {
                    run: run.id(),
                    active,
                    count: phase.map_or(0, |p| p.log_count),
                    status: phase.map(|p| p.status),
                }
            }
            _ => Fingerprint::Timeline {
                run: run.id(),
                active,
                state,
            },
        }
    }

    fn same(&self, other: &Fingerprint) -> bool {
        match (self, other) {
            (Fingerprint::NoRun, Fingerprint::NoRun) => true,
            (
                Fingerprint::Timeline { run, active, state },
                Fingerprint::Timeline {
                    run: r2,
                    active: a2,
                    state: s2,
                },
            ) => run == r2 && active == a2 && Arc::ptr_eq(state, s2),
            (
                Fingerprint::Logs {
                    run,
                    active,
                    count,
                    status,
                },
                Fingerprint::Logs {
                    run: r2,
                    active: a2,
                    count: c2,
                    status: st2,
                },
            ) => run == r2 && active == a2 && count == c2 && status == st2,
            _ => false,
        }
    }
}

/// Sends updates of resource `key` (at `uri`) to `target` until `cancel` is cancelled or the
/// receiver goes away. The graph never changes, so watching it only waits.
pub(crate) async fn watch_resource(
    hub: Arc<Hub>,
    key: ResourceKey,
    uri: String,
    target: Target,
    cancel: CancellationToken,
) {
    if key == ResourceKey::Graph {
        cancel.cancelled().await;
        return;
    }
    let mut runs = hub.runs();
    let mut bound: Option<u64> = None;
    let mut states: Option<watch::Receiver<Arc<PipelineState>>> = None;
    let mut last = Fingerprint::of(&hub, &key);
    let mut last_sent: Option<Instant> = None;
    loop {
        let current = runs.borrow_and_update().clone();
        let id = current.as_ref().map(|r| r.id());
        if id != bound {
            bound = id;
            states = current.map(|r| r.store().watch());
        }
        let now = Fingerprint::of(&hub, &key);
        if !now.same(&last) {
            let terminal = hub.current().is_some_and(|r| !r.is_active());
            if let Some(sent) = last_sent
                && !terminal
                && Instant::now() < sent + MIN_INTERVAL
            {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(sent + MIN_INTERVAL) => {}
                }
                continue;
            }
            if !target.send(&uri).await {
                return;
            }
            last = now;
            last_sent = Some(Instant::now());
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = runs.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = state_changed(&mut states) => {}
        }
    }
}

async fn state_changed(states: &mut Option<watch::Receiver<Arc<PipelineState>>>) {
    match states {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
