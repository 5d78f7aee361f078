//! `lijian bench load`: a generated campaign file (with a share of bad rows)
//! through `lijian load` as a child process, as an operator would run it. The
//! clock covers the whole command (rows stored, held for the scheduler, which
//! releases them at the account's pace); peak RSS is the child's high-water
//! mark. Baselines in the same run: a raw COPY of the same number of rows and
//! raw quorum publishes with confirms (what one message per order would cost).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::SinkExt;
use lijian_core::config::Settings;
use lijian_core::signing::RsaPrivateKey;

use super::common::{publish_confirm_per_sec, BenchEnv};

pub async fn run(base: &Settings, rows: usize, bad_per_mille: usize) -> anyhow::Result<()> {
    let key = RsaPrivateKey::generate()?;
    let env = BenchEnv::create(base, &key.public_key_pem()?).await?;
    let outcome = measure(&env, rows, bad_per_mille).await;
    env.destroy().await;
    outcome
}

async fn measure(env: &BenchEnv, rows: usize, bad_per_mille: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.csv");
    let bad = write_campaign(&file, rows, bad_per_mille)?;
    let size_mb = std::fs::metadata(&file)?.len() as f64 / 1e6;
    println!("campaign file: {rows} rows ({} bad), {size_mb:.1} MB", bad.len());

    println!("baselines (same machine, same run):");
    let copy = raw_copy_per_sec(env, rows).await?;
    println!("  raw COPY into a plain table       {copy:>10.0} rows/s");
    let publish = publish_confirm_per_sec(&env.settings, 50_000).await?;
    println!("  quorum publish + confirm          {publish:>10.0} msgs/s");

    let balance_before = balance(env).await?;
    let first = run_load(env, &file, "bench").await?;
    let rate = rows as f64 / first.elapsed.as_secs_f64();
    println!("lijian load (first run):");
    println!(
        "  {rows} rows in {:.1} s = {rate:.0} rows/s ({:.2}× raw COPY, {:.1}× one publish per row)",
        first.elapsed.as_secs_f64(),
        rate / copy,
        rate / publish
    );
    println!("  peak RSS {:.0} MB", first.peak_rss_kb as f64 / 1024.0);

    // Exactly the bad lines rejected, exactly the good ones charged, all held.
    let rejected = rejected_lines(&dir.path().join("bench.rejects.csv"))?;
    let (orders, held, outbox) = counts(env).await?;
    let charged = balance_before - balance(env).await?;
    let good = (rows - bad.len()) as i64;
    let checks = [
        ("rejects file lists exactly the bad lines", rejected == bad),
        ("one order per good row", orders == good),
        ("charged exactly the good rows (450 fen each)", charged == good * 450),
        ("every order held for the scheduler (none on the broker, outbox empty)", held == orders && outbox == 0),
        ("≤ 30 s", first.elapsed <= Duration::from_secs(30)),
        ("peak RSS ≤ 150 MB", first.peak_rss_kb <= 150 * 1024),
    ];

    let again = run_load(env, &file, "bench").await?;
    let (orders_again, _, _) = counts(env).await?;
    let charged_again = balance_before - balance(env).await?;
    println!(
        "lijian load (same file again): {:.1} s, peak RSS {:.0} MB",
        again.elapsed.as_secs_f64(),
        again.peak_rss_kb as f64 / 1024.0
    );
    let again_ok = orders_again == orders && charged_again == charged && again.stdout.contains("accepted:   0");

    let mut failed = false;
    for (what, ok) in checks.iter().chain([("re-load accepts and charges nothing", again_ok)].iter()) {
        println!("  [{}] {what}", if *ok { "ok" } else { "FAILED" });
        failed |= !ok;
    }
    if failed {
        println!("first run's output:\n{}", first.stdout);
        bail!("the load benchmark missed a goal");
    }
    Ok(())
}

fn write_campaign(path: &Path, rows: usize, bad_per_mille: usize) -> anyhow::Result<BTreeSet<u64>> {
    write_campaign_as(path, rows, bad_per_mille, "B")
}

/// Writes `rows` data rows, bizCodes `<biz><i>`; returns the line numbers of
/// the bad ones (header is line 1). Bad rows cycle through the kinds of
/// mistake a campaign file has.
pub(super) fn write_campaign_as(
    path: &Path,
    rows: usize,
    bad_per_mille: usize,
    biz: &str,
) -> anyhow::Result<BTreeSet<u64>> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "openId,bizCode,activityId,productCode")?;
    let mut bad = BTreeSet::new();
    let every = 1000usize.checked_div(bad_per_mille).unwrap_or(usize::MAX).max(1);
    for i in 0..rows {
        let line = i as u64 + 2;
        if i % every == every / 2 {
            bad.insert(line);
            match (i / every) % 4 {
                0 => writeln!(out, ",{biz}{i},bench-a,bench-p")?,
                1 => writeln!(out, "o bad {i},{biz}{i},bench-a,bench-p")?,
                2 => writeln!(out, "oUser{i},{},bench-a,bench-p", "x".repeat(65))?,
                _ => writeln!(out, "oUser{i},{biz}{i},bench-a,no-such-product")?,
            }
        } else {
            writeln!(out, "oUser{i},{biz}{i},bench-a,bench-p")?;
        }
    }
    out.flush()?;
    Ok(bad)
}

pub(super) struct LoadRun {
    pub elapsed: Duration,
    pub peak_rss_kb: u64,
    pub stdout: String,
}

/// `lijian load FILE` into `campaign` as a child process, timed, its peak RSS sampled.
pub(super) async fn run_load(env: &BenchEnv, file: &Path, campaign: &str) -> anyhow::Result<LoadRun> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["load", &file.display().to_string(), "--merchant-id", "bench-m", "--campaign", campaign])
        .env("LIJIAN_DATABASE_URL", &env.settings.database.url)
        .env("LIJIAN_AMQP_URL", &env.settings.broker.url)
        .env("LIJIAN_QUEUE_PREFIX", &env.settings.broker.queue_prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting lijian load")?;
    let pid = child.id().unwrap_or(0);
    let mut peak = 0;
    let status = loop {
        peak = peak.max(high_water_kb(pid));
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let elapsed = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use tokio::io::AsyncReadExt;
        out.read_to_string(&mut stdout).await?;
    }
    if !status.success() {
        bail!("lijian load failed: {status}\n{stdout}");
    }
    Ok(LoadRun { elapsed, peak_rss_kb: peak, stdout })
}

/// VmHWM of a running process (kB); 0 once it is gone.
fn high_water_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rejected_lines(path: &Path) -> anyhow::Result<BTreeSet<u64>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut lines = BTreeSet::new();
    for record in reader.byte_records() {
        let record = record?;
        let line = std::str::from_utf8(record.get(0).unwrap_or_default())?.parse()?;
        lines.insert(line);
    }
    Ok(lines)
}

async fn balance(env: &BenchEnv) -> anyhow::Result<i64> {
    let client = env.store.client().await?;
    Ok(client.query_one("SELECT balance_fen FROM merchants WHERE merchant_id = 'bench-m'", &[]).await?.get(0))
}

async fn counts(env: &BenchEnv) -> anyhow::Result<(i64, i64, i64)> {
    let client = env.store.client().await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders WHERE campaign = 'bench'),
                    (SELECT count(*) FROM orders WHERE campaign = 'bench' AND enqueued_at IS NULL),
                    (SELECT count(*) FROM issue_outbox)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// COPY of `rows` generated rows (same columns as a campaign row) into an
/// unindexed table: what PostgreSQL alone can take in.
async fn raw_copy_per_sec(env: &BenchEnv, rows: usize) -> anyhow::Result<f64> {
    let client = env.store.client().await?;
    client
        .batch_execute(
            "CREATE TABLE bench_copy (line bigint, biz_code text, open_id text, activity_id text, product_code text)",
        )
        .await?;
    let mut text = Vec::with_capacity(rows * 48);
    for i in 0..rows {
        writeln!(text, "{}\tB{i}\toUser{i}\tbench-a\tbench-p", i + 2)?;
    }
    let started = Instant::now();
    let sink = client.copy_in("COPY bench_copy FROM STDIN").await?;
    futures::pin_mut!(sink);
    for chunk in text.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await?;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    client.batch_execute("DROP TABLE bench_copy").await?;
    Ok(rate)
}
