//! Starting the scheduler role from a process's shared [`Deps`], like every other role.

use std::sync::Arc;

use lijian_core::deps::Deps;
use tokio_util::sync::CancellationToken;

use crate::scheduler::Scheduler;

/// A running scheduler: its counters and the task to await.
pub struct RunningScheduler {
    pub scheduler: Arc<Scheduler>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Releases campaigns until `shutdown`; its metrics join `deps.ops`.
pub fn start_scheduler(deps: &Deps, shutdown: CancellationToken) -> RunningScheduler {
    let scheduler = Scheduler::new(deps.store.clone(), deps.publisher.clone(), &deps.settings);
    deps.ops.add_role("scheduler", scheduler.clone());
    let task = tokio::spawn(scheduler.clone().run(shutdown));
    RunningScheduler { scheduler, task }
}
