//! What the roles of one process share, built once by [`Deps::connect`]: the
//! settings, one PostgreSQL pool, one confirming publisher, the broker topology
//! and the operator view. Every role starts from it (`lijian_gateway::start`,
//! `lijian_consumer::start`, `lijian_notifier::start`,
//! `lijian_producer::start_scheduler`), whether alone, under `lijian serve` or in
//! `lijian demo`.

use std::sync::Arc;

use crate::config::Settings;
use crate::queue::{Publisher, Topology};
use crate::store::{Store, StoreError};
use crate::telemetry::Ops;

/// A process's shared connections and views. Cheap to borrow; clone the parts.
pub struct Deps {
    pub settings: Settings,
    /// One pool of `database.pool_size` connections for the whole process, so an
    /// operator budgets PostgreSQL's `max_connections` as processes × pool size.
    /// Connections open lazily: this succeeds while PostgreSQL is down.
    pub store: Store,
    /// One confirming channel, shared by every role's publishes (lapin pipelines them).
    pub publisher: Arc<Publisher>,
    pub topology: Topology,
    /// Each role adds its metrics here when it starts; served at `/metrics`.
    pub ops: Arc<Ops>,
}

impl Deps {
    /// Builds the pool, publisher and operator view; `name` is shown in
    /// RabbitMQ's connection list. Nothing connects yet.
    pub fn connect(settings: &Settings, name: &str) -> Result<Deps, StoreError> {
        let topology = Topology::from_settings(settings);
        let store = Store::for_settings(settings, settings.database.pool_size)?;
        let publisher = Publisher::for_settings(settings, name, topology.clone());
        let ops = Arc::new(Ops::new(store.clone(), publisher.clone(), topology.clone()));
        Ok(Deps { settings: settings.clone(), store, publisher, topology, ops })
    }
}
