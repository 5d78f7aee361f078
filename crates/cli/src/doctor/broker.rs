//! RabbitMQ: does it answer the AMQP handshake (a broker out of file handles
//! accepts TCP and stays silent) and which version, do our credentials work,
//! can quorum queues be declared, and how many file handles are left against
//! what a queue prefix costs. The AMQP protocol does not tell the file-handle
//! limit; the management API does (`/api/nodes`) when its plugin is on.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lijian_core::config::{format_duration, server_address, Settings};
use lijian_core::queue::Topology;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Finding;

/// What a quorum queue costs in file handles, at least (segment files while it
/// holds messages; docs/operations.md, "Broker footprint").
const HANDLES_PER_QUEUE: u64 = 2;
/// Handles kept free for connections: 16 processes with two each.
const HANDLES_FOR_CONNECTIONS: u64 = 32;
/// Debian's default limit for the broker: a few prefixes exhaust it.
const DEFAULT_LIMIT: u64 = 1024;
const RAISE_LIMIT: &str = "raise the broker's open-file limit: LimitNOFILE=65536 in a systemd override \
                           (systemctl edit rabbitmq-server), restart it, check with rabbitmq-diagnostics status";

pub async fn check(settings: &Settings, management_url: Option<&str>) -> Vec<Finding> {
    let url = &settings.broker.url;
    let address = server_address(url);
    let limit = settings.broker.connect_timeout;
    let topology = Topology::from_settings(settings);
    let queues = topology.queues().len() as u64;
    let uri = match url.parse::<AMQPUri>() {
        Ok(uri) => uri,
        Err(e) => {
            let fix = "fix LIJIAN_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f";
            return vec![
                Finding::fail("rabbitmq", format!("LIJIAN_AMQP_URL is not an AMQP URL: {e}"), fix),
                Finding::skipped("quorum queues", "RabbitMQ"),
                Finding::skipped("file handles", "RabbitMQ"),
            ];
        }
    };
    // The management API is asked at the same time: a silent broker costs one timeout.
    let (mut out, handles) =
        tokio::join!(amqp(url, &uri, &address, limit, &topology), file_handles(&uri, limit, management_url, queues));
    out.push(handles);
    out
}

/// The AMQP checks: handshake and version, credentials, quorum queues.
async fn amqp(url: &str, uri: &AMQPUri, address: &str, limit: Duration, topology: &Topology) -> Vec<Finding> {
    let mut out = Vec::new();
    // A TLS broker's handshake is lapin's to do; plain AMQP we read ourselves,
    // for the version lapin does not expose.
    let version = if uri.scheme == AMQPScheme::AMQPS {
        None
    } else {
        let host = &uri.authority.host;
        let target = if host.contains(':') {
            format!("[{host}]:{}", uri.authority.port)
        } else {
            format!("{host}:{}", uri.authority.port)
        };
        match server_properties(&target, limit).await {
            Ok(version) => Some(version),
            Err(why) => {
                out.push(Finding::fail("rabbitmq", format!("at {address}: {why}"), unreachable_fix(limit)));
                out.push(Finding::skipped("quorum queues", "RabbitMQ"));
                return out;
            }
        }
    };
    let connection = match lijian_core::queue::connect_within(url, "lijian-doctor", limit).await {
        Ok(connection) => connection,
        Err(e) => {
            out.push(Finding::fail(
                "rabbitmq",
                e.to_string(),
                "check the user, password and vhost of LIJIAN_AMQP_URL (rabbitmqctl list_users, list_vhosts)",
            ));
            out.push(Finding::skipped("quorum queues", "RabbitMQ"));
            return out;
        }
    };
    out.push(match &version {
        Some((product, version, platform)) => {
            let text = format!("{product} {version} at {address} ({platform})");
            if version_below(version, (3, 10)) {
                Finding::fail(
                    "rabbitmq",
                    format!("{text}: our queues need 3.10 or newer (at-least-once dead-lettering)"),
                    "upgrade RabbitMQ",
                )
            } else {
                Finding::ok("rabbitmq", text)
            }
        }
        None => Finding::ok("rabbitmq", format!("RabbitMQ at {address} (TLS; version not read)")),
    });
    out.push(quorum_queues(&connection, topology).await);
    let _ = connection.close(200, "doctor done".into()).await;
    out
}

fn unreachable_fix(limit: Duration) -> String {
    format!(
        "start RabbitMQ or point LIJIAN_AMQP_URL at it; if it accepts connections but stays silent it is likely out of \
         file handles: run rabbitmq-diagnostics status on its host (waited {}, LIJIAN_AMQP_CONNECT_TIMEOUT)",
        format_duration(limit)
    )
}

/// Opens TCP, sends the AMQP 0-9-1 protocol header and reads the broker's
/// `connection.start`: its product, version and platform. Within `limit`.
async fn server_properties(target: &str, limit: Duration) -> Result<(String, String, String), String> {
    let handshake = async {
        let mut stream = tokio::net::TcpStream::connect(target).await.map_err(|e| format!("cannot connect: {e}"))?;
        stream.write_all(b"AMQP\x00\x00\x09\x01").await.map_err(|e| format!("cannot send: {e}"))?;
        let mut header = [0u8; 7];
        stream.read_exact(&mut header).await.map_err(|e| format!("closed the connection during the handshake: {e}"))?;
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        // A method frame (1) carrying connection.start (class 10, method 10).
        if header[0] != 1 || !(6..=1 << 20).contains(&size) {
            return Err("answered, but not with AMQP 0-9-1".to_string());
        }
        let mut payload = vec![0u8; size];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("closed the connection during the handshake: {e}"))?;
        if payload[..4] != [0, 10, 0, 10] {
            return Err("answered, but not with AMQP 0-9-1 connection.start".to_string());
        }
        let (_, properties) = lapin::types::parsing::parse_field_table(&payload[6..])
            .map_err(|_| "sent server properties we cannot read".to_string())?;
        let text = |key: &str| match properties.inner().get(key) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            _ => "?".to_string(),
        };
        Ok((text("product"), text("version"), text("platform")))
    };
    tokio::time::timeout(limit, handshake).await.unwrap_or_else(|_| {
        Err(format!("accepted the connection but did not answer the AMQP handshake within {}", format_duration(limit)))
    })
}

/// "3.9.13" is below (3, 10); an unreadable version is not.
fn version_below(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => false,
    }
}

/// Declares (and deletes) a quorum queue of our prefix, and says whether the
/// prefix's topology is declared yet.
async fn quorum_queues(connection: &lapin::Connection, topology: &Topology) -> Finding {
    let probe = format!("{}.doctor-probe", topology.prefix());
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    let declared = async {
        let channel = connection.create_channel().await?;
        channel.queue_declare(probe.as_str().into(), QueueDeclareOptions::durable(), args).await?;
        channel.queue_delete(probe.as_str().into(), QueueDeleteOptions::default()).await?;
        let _ = channel.close(200, "probe done".into()).await;
        Ok::<_, lapin::Error>(())
    };
    if let Err(e) = declared.await {
        return Finding::fail(
            "quorum queues",
            format!("cannot declare a quorum queue: {e}"),
            "RabbitMQ 3.8+ with the quorum_queue feature flag: rabbitmqctl enable_feature_flag quorum_queue",
        );
    }
    // A passive declare of a missing queue closes its channel: one of its own.
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let ours = match connection.create_channel().await {
        Ok(channel) => {
            let found =
                channel.queue_declare(topology.issue_queue().as_str().into(), passive, FieldTable::default()).await;
            let _ = channel.close(200, "done".into()).await;
            found.is_ok()
        }
        Err(_) => false,
    };
    Finding::ok(
        "quorum queues",
        format!(
            "available; prefix {} has {} quorum queues, {}",
            topology.prefix(),
            topology.queues().len(),
            if ours { "declared" } else { "not declared yet (each role declares them when it starts)" }
        ),
    )
}

/// The broker's file handles from the management API, judged by [`judge_handles`].
/// By default on port 15672 of the broker's host, with the AMQP URL's credentials.
async fn file_handles(amqp: &AMQPUri, limit: Duration, management_url: Option<&str>, queues: u64) -> Finding {
    let host = &amqp.authority.host;
    let default = if host.contains(':') { format!("http://[{host}]:15672") } else { format!("http://{host}:15672") };
    let base = management_url.map(str::to_string).unwrap_or(default);
    let userinfo = &amqp.authority.userinfo;
    let unavailable = |why: String| {
        Finding::warn(
            "file handles",
            format!("cannot read the broker's file handles: management API at {base} {why}"),
            format!(
                "run rabbitmq-diagnostics status on the broker host and compare \"File Descriptors\" with about {} per \
                 queue prefix, or enable the management plugin (rabbitmq-plugins enable rabbitmq_management) and give \
                 --management-url",
                queues * HANDLES_PER_QUEUE
            ),
        )
    };
    let http = match reqwest::Client::builder().timeout(limit).build() {
        Ok(http) => http,
        Err(e) => return unavailable(e.to_string()),
    };
    let nodes = http
        .get(format!("{}/api/nodes", base.trim_end_matches('/')))
        .basic_auth(&userinfo.username, Some(&userinfo.password))
        .send()
        .await;
    let answer = match nodes {
        Ok(answer) if answer.status().is_success() => answer,
        Ok(answer) => return unavailable(format!("answered HTTP {}", answer.status())),
        Err(e) => return unavailable(format!("is not reachable ({})", innermost_cause(&e))),
    };
    let nodes: Vec<serde_json::Value> = match answer.json().await {
        Ok(nodes) => nodes,
        Err(e) => return unavailable(format!("sent an answer we cannot read: {e}")),
    };
    let worst = nodes
        .iter()
        .filter_map(|n| Some((n["name"].as_str()?.to_string(), n["fd_total"].as_u64()?, n["fd_used"].as_u64()?)))
        .max_by_key(|(_, total, used)| used.saturating_mul(1000) / (*total).max(1));
    match worst {
        Some((node, total, used)) => judge_handles(&node, total, used, queues),
        None => unavailable("reports no node's file handles".to_string()),
    }
}

/// "Connection refused (os error 111)" rather than reqwest's "error sending request".
fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// FAIL when fewer handles are free than one more queue prefix needs; WARN at
/// the default limit of 1,024 or without room for a prefix and connections.
fn judge_handles(node: &str, total: u64, used: u64, queues: u64) -> Finding {
    let free = total.saturating_sub(used);
    let prefix = queues * HANDLES_PER_QUEUE;
    let text = format!(
        "{node}: {used} of {total} file handles in use, {free} free; a prefix of {queues} quorum queues needs about {prefix}"
    );
    if free < prefix {
        Finding::fail("file handles", format!("{text}: the broker is about to stop accepting connections"), RAISE_LIMIT)
    } else if total <= DEFAULT_LIMIT || free < prefix + HANDLES_FOR_CONNECTIONS {
        Finding::warn("file handles", format!("{text}: a few prefixes or connections more exhaust it"), RAISE_LIMIT)
    } else {
        Finding::ok("file handles", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn file_handles_are_judged_against_a_prefix_and_the_default_limit() {
        assert_eq!(judge_handles("n", 1024, 1000, 22).level, Level::Fail, "24 free < 44");
        assert_eq!(judge_handles("n", 1024, 100, 22).level, Level::Warn, "the default limit");
        assert_eq!(judge_handles("n", 65536, 65480, 22).level, Level::Warn, "56 free < 44 + 32");
        let ok = judge_handles("rabbit@mq", 65536, 500, 22);
        assert_eq!(ok.level, Level::Ok);
        assert!(ok.text.contains("500 of 65536") && ok.text.contains("about 44"), "{}", ok.text);
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_below("3.9.29", (3, 10)));
        assert!(!version_below("3.10.8", (3, 10)));
        assert!(!version_below("4.0.0-rc.1", (3, 10)));
        assert!(!version_below("?", (3, 10)));
    }
}
