//! Running a registry plan against the workers, and keeping the session it changed in the state store; a stream the
//! plan (re)added on a worker is given its metadata again after the commit.

use ringfwd_dataplane::control::{Command, StreamId, SubscriptionId};
use tonic::Status;

use super::status;
use super::Api;
use crate::commands::ExecError;
use crate::registry::{Outcome, Plan, Registry, RegistryError};

impl Api {
    /// Plans under the registry lock, applies the plan's commands on the workers (each acknowledged before the
    /// next), then commits. See the module docs for what happens when a worker does not acknowledge.
    pub(crate) async fn apply(
        &self,
        plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>,
    ) -> Result<Outcome, Status> {
        self.apply_then(plan, |_, _| Ok(())).await
    }

    /// [`Api::apply`], then `committed` with the registry and the outcome, still under the registry lock, when
    /// the change was committed (a delete: also when a worker failed). The change's lifecycle events are
    /// published right after the commit, before `committed` runs (so a create's metadata event follows it).
    /// `committed` answers whether what it did was kept (see [`Api::keep`]).
    pub(crate) async fn apply_then(
        &self,
        plan: impl FnOnce(&Registry) -> Result<Plan, RegistryError>,
        committed: impl FnOnce(&Registry, &Outcome) -> Result<(), Status>,
    ) -> Result<Outcome, Status> {
        let mut registry = self.registry.lock().await;
        let plan = plan(&registry).map_err(status::registry)?;
        let (outcome, first_error) = self.execute_and_commit(&mut registry, plan).await?;
        committed(&registry, &outcome)?;
        self.offer_unclaimed(&mut registry).await;
        match first_error {
            Some(e) => Err(status::exec(e)),
            None => Ok(outcome),
        }
    }

    /// Runs `plan` with the registry lock held (its guard is `registry`): its commands on the workers, then the
    /// commit and its lifecycle events. `Err` when a create or update failed and was undone (nothing committed);
    /// otherwise the outcome, with a delete's first failure (committed anyway).
    pub(super) async fn execute_and_commit(
        &self,
        registry: &mut Registry,
        plan: Plan,
    ) -> Result<(Outcome, Option<ExecError>), Status> {
        let is_delete = matches!(plan.outcome, Outcome::Deleted(_));
        let mut first_error = None;
        for (i, (worker, command)) in plan.commands.iter().enumerate() {
            if let Err(e) = self.client.execute(*worker, command.clone()).await {
                if !is_delete {
                    // A command that timed out is still queued to its worker and may be applied late, so it is
                    // undone too (undoing what was never applied answers "not found", harmlessly).
                    let applied = if matches!(e, ExecError::Timeout { .. }) { i + 1 } else { i };
                    self.undo(plan.rollback(applied)).await;
                    return Err(status::exec(e));
                }
                // Every removal is sent: each is independent, and a late one is still queued to its worker.
                first_error.get_or_insert(e);
            }
        }
        // Streams and subscriptions this plan (re)adds on a worker (a create, a restore, one moved to another worker)
        // start there without metadata: theirs is given again after the commit.
        let mut added: (Vec<StreamId>, Vec<SubscriptionId>) = Default::default();
        for (_, command) in &plan.commands {
            match command {
                Command::AddStream { id, .. } => added.0.push(*id),
                Command::AddSubscription { id, .. } => added.1.push(*id),
                _ => {}
            }
        }
        let Plan { change, outcome, .. } = plan;
        // What a delete takes with it and what an update replaces, read before the commit: the lifecycle events
        // name all that goes, and tell a pause, resume or switch from the subscription as it was.
        let (removal, replaced) = (registry.removal(&change), registry.replaced_subscription(&change));
        let session = change.session_id().map(str::to_owned);
        registry.commit(change);
        self.publish_commit(&outcome, removal, replaced);
        self.push_added_metadata(registry, (&added.0, &added.1)).await;
        if let Some(session) = session {
            self.keep(registry, &session)?;
        }
        Ok((outcome, first_error))
    }

    /// Writes session `session_id` as `registry` now holds it, with the metadata of its objects, to the state store,
    /// if one is attached (deletes it when it is gone). A failure answers the call `Internal`: the change is in
    /// effect but would not survive a restart, and the caller must know. Called under the registry lock; takes the
    /// metadata lock.
    pub(super) fn keep(&self, registry: &Registry, session_id: &str) -> Result<(), Status> {
        let Some(store) = self.state.get() else {
            return Ok(());
        };
        let written = match registry.export_session(session_id) {
            Some(session) => {
                let metadata = self.export_metadata(registry, session_id);
                store.save_session(&crate::state::KeptSession { session, metadata })
            }
            None => store.delete_session(session_id),
        };
        written.map_err(|error| {
            tracing::error!(%error, session_id, "a change is in effect but could not be kept");
            Status::internal(format!("the change is in effect but could not be kept across a restart: {error}"))
        })
    }

    async fn undo(&self, commands: Vec<(usize, Command)>) {
        for (worker, command) in commands {
            if let Err(e) = self.client.execute(worker, command).await {
                tracing::warn!(worker, error = %e, "could not undo a partly applied change");
            }
        }
    }

    /// A read under the registry lock.
    pub(super) async fn read<T>(&self, f: impl FnOnce(&Registry) -> Result<T, RegistryError>) -> Result<T, Status> {
        f(&*self.registry.lock().await).map_err(status::registry)
    }
}
