//! Before the demo starts anything: are PostgreSQL and RabbitMQ there? If not,
//! say which one, where we looked, and how to start it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use lijian_core::config::{redact_url, Settings};

const START_BOTH: &str = "or start both with: docker compose -f deploy/docker-compose.yml up -d";

pub async fn check(settings: &Settings) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = postgres(&settings.database.url).await {
        let at = pg_address(&settings.database.url);
        problems.push(format!(
            "PostgreSQL is not reachable at {at} ({e}).\n  Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n  (or point LIJIAN_DATABASE_URL at yours; now {})",
            redact_url(&settings.database.url)
        ));
    }
    if let Err(e) = rabbitmq(&settings.broker.url).await {
        problems.push(format!(
            "RabbitMQ is not reachable at {} ({e}).\n  Start it: rabbitmq-server -detached\n  (or point LIJIAN_AMQP_URL at yours)",
            redact_url(&settings.broker.url)
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!("{}\n  {START_BOTH}", problems.join("\n"))
}

fn pg_address(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}")
        }
        Err(_) => redact_url(url),
    }
}

async fn postgres(url: &str) -> anyhow::Result<()> {
    let admin = lijian_core::store::with_database(url, "postgres");
    let store = lijian_core::store::Store::connect(&admin, 1)?;
    match tokio::time::timeout(Duration::from_secs(3), store.client()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => bail!("no answer within 3 s"),
    }
}

async fn rabbitmq(url: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(3), lijian_core::queue::connect(url, "lijian-demo-check")).await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "checked".into()).await;
            Ok(())
        }
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => bail!("no answer within 3 s"),
    }
}
