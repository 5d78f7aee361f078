//! Whose log line it is. Each role logs under its own target, also from the code
//! roles share (the consume loop, the outbox relay, the batch writers, the ops
//! endpoints), so `RUST_LOG=lijian_notifier=debug` shows the whole notifier and
//! a line from the consumer never reads as another role's. Targets live in a
//! callsite's static metadata, so shared code picks one of these constants with
//! [`role_event!`](crate::role_event) instead of passing a name at run time.

/// The gateway's target (its own crate's name).
pub const GATEWAY: &str = "lijian_gateway";
/// The consumer's target.
pub const CONSUMER: &str = "lijian_consumer";
/// The notifier's target.
pub const NOTIFIER: &str = "lijian_notifier";
/// The scheduler's target (its code is `lijian_producer::scheduler`).
pub const SCHEDULER: &str = "lijian_producer::scheduler";
/// The operator console's target (its own crate's name).
pub const CONSOLE: &str = "lijian_console";
/// A process running several roles (`lijian serve`), or a one-shot command.
pub const PROCESS: &str = "lijian";

/// The role a shared piece of code is working for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Gateway,
    Consumer,
    Notifier,
    Scheduler,
    Console,
    /// Several roles, or none (a one-shot command).
    Process,
}

impl LogTarget {
    pub const fn name(self) -> &'static str {
        match self {
            LogTarget::Gateway => GATEWAY,
            LogTarget::Consumer => CONSUMER,
            LogTarget::Notifier => NOTIFIER,
            LogTarget::Scheduler => SCHEDULER,
            LogTarget::Console => CONSOLE,
            LogTarget::Process => PROCESS,
        }
    }

    /// The role a process was named for (`lijian-consumer`, as in RabbitMQ's
    /// connection list); any other name is a process of several roles.
    pub fn for_process(name: &str) -> LogTarget {
        match name.strip_prefix("lijian-") {
            Some("gateway") => LogTarget::Gateway,
            Some("consumer") => LogTarget::Consumer,
            Some("notifier") => LogTarget::Notifier,
            Some("scheduler") => LogTarget::Scheduler,
            Some("console") => LogTarget::Console,
            _ => LogTarget::Process,
        }
    }
}

/// `tracing::event!` under the target of a [`LogTarget`] known at run time:
/// `role_event!(target, tracing::Level::WARN, error = %e, "message")`.
#[macro_export]
macro_rules! role_event {
    ($target:expr, $level:expr, $($rest:tt)+) => {
        match $target {
            $crate::telemetry::LogTarget::Gateway => {
                ::tracing::event!(target: $crate::telemetry::logs::GATEWAY, $level, $($rest)+)
            }
            $crate::telemetry::LogTarget::Consumer => {
                ::tracing::event!(target: $crate::telemetry::logs::CONSUMER, $level, $($rest)+)
            }
            $crate::telemetry::LogTarget::Notifier => {
                ::tracing::event!(target: $crate::telemetry::logs::NOTIFIER, $level, $($rest)+)
            }
            $crate::telemetry::LogTarget::Scheduler => {
                ::tracing::event!(target: $crate::telemetry::logs::SCHEDULER, $level, $($rest)+)
            }
            $crate::telemetry::LogTarget::Console => {
                ::tracing::event!(target: $crate::telemetry::logs::CONSOLE, $level, $($rest)+)
            }
            $crate::telemetry::LogTarget::Process => {
                ::tracing::event!(target: $crate::telemetry::logs::PROCESS, $level, $($rest)+)
            }
        }
    };
}
