//! SQL functions, defined once (docs/decisions.md, "SQL functions defined
//! once"). Each function's current text lives in one file under
//! `migrations/functions/`; `migrate` applies them with CREATE OR REPLACE after
//! the numbered migrations, in the same transaction, and records each text's
//! sha256 in `lijian_functions` so an unchanged function is not replaced again
//! (replacing one makes every session that calls it plan it afresh).

use tokio_postgres::GenericClient;

use super::StoreError;

/// Applied in this order: a `LANGUAGE sql` function's body is checked when it
/// is created, so a function it calls comes before it (notify ids before
/// `lijian_end_orders` and `lijian_late_notify_id`).
pub(super) const FUNCTIONS: &[(&str, &str)] = &[
    ("lijian_notify_id", include_str!("../../migrations/functions/lijian_notify_id.sql")),
    ("lijian_late_notify_id", include_str!("../../migrations/functions/lijian_late_notify_id.sql")),
    ("lijian_face_mismatch", include_str!("../../migrations/functions/lijian_face_mismatch.sql")),
    ("lijian_end_orders", include_str!("../../migrations/functions/lijian_end_orders.sql")),
    ("lijian_issue_late", include_str!("../../migrations/functions/lijian_issue_late.sql")),
    ("lijian_cancel_unreleased", include_str!("../../migrations/functions/lijian_cancel_unreleased.sql")),
    ("lijian_accept_order", include_str!("../../migrations/functions/lijian_accept_order.sql")),
    ("lijian_accept_batch", include_str!("../../migrations/functions/lijian_accept_batch.sql")),
    ("lijian_take_slots", include_str!("../../migrations/functions/lijian_take_slots.sql")),
    ("lijian_pause_sends", include_str!("../../migrations/functions/lijian_pause_sends.sql")),
];

/// Created under the migration lock, like `lijian_migrations`.
pub(super) const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS lijian_functions (
    name text PRIMARY KEY, sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// The functions whose recorded text differs from this binary's, or that the
/// database lacks (dropped since): what `migrate` would replace. All of them
/// when the database predates `lijian_functions`.
pub(super) async fn stale(client: &impl GenericClient) -> Result<Vec<&'static str>, StoreError> {
    let tracked: bool = client.query_one("SELECT to_regclass('lijian_functions') IS NOT NULL", &[]).await?.get(0);
    if !tracked {
        return Ok(FUNCTIONS.iter().map(|(name, _)| *name).collect());
    }
    let names: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
    let texts: Vec<&str> = FUNCTIONS.iter().map(|(_, text)| *text).collect();
    let rows = client
        .query(
            "SELECT f.name FROM unnest($1::text[], $2::text[]) AS f(name, text)
               LEFT JOIN lijian_functions l ON l.name = f.name
              WHERE l.sha256 IS DISTINCT FROM encode(sha256(convert_to(f.text, 'UTF8')), 'hex')
                 OR NOT EXISTS (SELECT 1 FROM pg_proc p
                                 WHERE p.proname = f.name AND p.pronamespace = to_regnamespace(current_schema()))",
            &[&names, &texts],
        )
        .await?;
    let stale: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(names.into_iter().filter(|name| stale.iter().any(|s| s == name)).collect())
}

/// Replaces the stale functions, or every one when `all` (a numbered migration
/// ran in this transaction and may have dropped one), and records their texts.
/// Returns the names replaced.
pub(super) async fn apply(client: &impl GenericClient, all: bool) -> Result<Vec<&'static str>, StoreError> {
    let due = if all { FUNCTIONS.iter().map(|(name, _)| *name).collect() } else { stale(client).await? };
    for (name, text) in FUNCTIONS.iter().filter(|(name, _)| due.contains(name)) {
        client.batch_execute(text).await?;
        client
            .execute(
                "INSERT INTO lijian_functions (name, sha256)
                 VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'))
                 ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
                &[name, text],
            )
            .await?;
    }
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::FUNCTIONS;

    /// Where `text` creates a function, case and spacing as SQL allows.
    fn creates(text: &str) -> Vec<String> {
        let words: Vec<String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .flat_map(|l| l.split_whitespace())
            .map(str::to_lowercase)
            .collect();
        let mut found = Vec::new();
        for (i, w) in words.iter().enumerate() {
            if w != "create" {
                continue;
            }
            let mut next = words[i + 1..].iter();
            let mut kind = next.next();
            if kind.is_some_and(|k| k == "or") && next.next().is_some_and(|k| k == "replace") {
                kind = next.next();
            }
            if kind.is_some_and(|k| k == "function" || k == "procedure") {
                found
                    .push(next.next().map(|n| n.split('(').next().unwrap_or_default().to_string()).unwrap_or_default());
            }
        }
        found
    }

    #[test]
    fn no_numbered_migration_defines_a_function() {
        for (version, name, sql) in super::super::MIGRATIONS {
            assert_eq!(
                creates(sql),
                Vec::<String>::new(),
                "{version:04}_{name} defines a function: put it in migrations/functions/"
            );
        }
    }

    #[test]
    fn each_function_file_defines_its_function_once() {
        for (name, text) in FUNCTIONS {
            assert_eq!(creates(text), vec![name.to_string()], "functions/{name}.sql");
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/functions");
        for entry in std::fs::read_dir(dir).expect("functions dir") {
            let path = entry.expect("entry").path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            assert!(
                FUNCTIONS.iter().any(|(name, _)| *name == stem),
                "{} is not applied: list it in FUNCTIONS",
                path.display()
            );
        }
    }

    #[test]
    fn the_scan_finds_a_function() {
        assert_eq!(creates("-- CREATE FUNCTION f()\nCreate  Or\nReplace function lijian_x(a int)"), vec!["lijian_x"]);
    }
}
