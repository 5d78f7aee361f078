//! Console operators, their API tokens and browser sessions. Passwords arrive
//! here already hashed and credentials as a selector and a secret's hash: this
//! module never sees a secret, and the console (`lijian-console`) does the
//! hashing and the constant-time comparison.

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::vocab::OperatorRole;

/// An operator as listed (no password hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorRow {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub role: OperatorRole,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Live API tokens.
    pub tokens: i64,
}

/// The two kinds of stored credential, alike in shape: a public selector finds
/// the row, the secret's hash proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An API token (`Authorization: Bearer`); lives until its operator is disabled.
    Token,
    /// A browser session; lives until `expires_at` or logout.
    Session,
}

impl CredentialKind {
    fn table(self) -> &'static str {
        match self {
            CredentialKind::Token => "operator_tokens",
            CredentialKind::Session => "operator_sessions",
        }
    }
}

/// A stored credential and whose it is (enabled operators only).
#[derive(Clone)]
pub struct Credential {
    pub operator: OperatorRow,
    /// SHA-256 of the secret, to compare in constant time.
    pub secret_hash: Vec<u8>,
}

/// Hashes are not secrets, but nothing about a credential belongs in a log line.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("operator", &self.operator.name).finish_non_exhaustive()
    }
}

const OPERATOR_COLUMNS: &str = "o.id, o.name, o.role, o.enabled, o.created_at,
    (SELECT count(*) FROM operator_tokens t WHERE t.operator_id = o.id)";

fn operator_from_row(r: &tokio_postgres::Row) -> OperatorRow {
    OperatorRow {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        enabled: r.get(3),
        created_at: r.get(4),
        tokens: r.get(5),
    }
}

/// An operator name: letters, digits, `_ . @ -`, at most 64 (the table's CHECK).
pub fn check_operator_name(name: &str) -> Result<(), StoreError> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if fits {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("operator name {name:?} must be 1 to 64 letters, digits or _ . @ -")))
    }
}

impl Store {
    /// Registers an operator with an already hashed password.
    pub async fn add_operator(
        &self,
        name: &str,
        role: OperatorRole,
        password_hash: &str,
    ) -> Result<OperatorRow, StoreError> {
        check_operator_name(name)?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3)",
                &[&name, &role, &password_hash],
            )
            .await
            .map_err(|e| StoreError::from_db(e, &format!("operator {name} already exists")))?;
        self.operator(name).await?.ok_or_else(|| StoreError::NotFound(format!("operator {name} not found")))
    }

    /// One operator by name, enabled or not.
    pub async fn operator(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators o WHERE o.name = $1");
        Ok(client.query_opt(&sql, &[&name]).await?.as_ref().map(operator_from_row))
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators o ORDER BY o.name");
        Ok(client.query(&sql, &[]).await?.iter().map(operator_from_row).collect())
    }

    /// An enabled operator and its password hash, for a login.
    pub async fn operator_password(&self, name: &str) -> Result<Option<(OperatorRow, String)>, StoreError> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {OPERATOR_COLUMNS}, o.password_hash FROM operators o WHERE o.name = $1 AND o.enabled");
        Ok(client.query_opt(&sql, &[&name]).await?.map(|r| (operator_from_row(&r), r.get(6))))
    }

    /// Disables an operator: its sessions and tokens are deleted at once, so it
    /// is locked out of the console and the API from this statement on.
    pub async fn disable_operator(&self, name: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE operators SET enabled = false, disabled_at = coalesce(disabled_at, now())
                  WHERE name = $1 RETURNING id",
                &[&name],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("operator {name} not found")))?;
        let id: i64 = row.get(0);
        tx.execute("DELETE FROM operator_sessions WHERE operator_id = $1", &[&id]).await?;
        tx.execute("DELETE FROM operator_tokens WHERE operator_id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a credential of an enabled operator (`expires_at` for sessions).
    pub async fn add_credential(
        &self,
        kind: CredentialKind,
        operator: &str,
        selector: &str,
        secret_hash: &[u8],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let sql = match kind {
            CredentialKind::Token => "INSERT INTO operator_tokens (selector, operator_id, secret_hash)
                 SELECT $1, id, $3 FROM operators WHERE name = $2 AND enabled AND $4::timestamptz IS NULL"
                .to_string(),
            CredentialKind::Session => format!(
                "INSERT INTO {} (selector, operator_id, secret_hash, expires_at)
                 SELECT $1, id, $3, $4::timestamptz FROM operators WHERE name = $2 AND enabled AND $4 IS NOT NULL",
                kind.table()
            ),
        };
        let n = client.execute(&sql, &[&selector, &operator, &secret_hash, &expires_at]).await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no enabled operator {operator}")));
        }
        Ok(())
    }

    /// The credential `selector` names, if it exists, has not expired and its
    /// operator is enabled. A token's use is noted (`last_used_at`).
    pub async fn credential(&self, kind: CredentialKind, selector: &str) -> Result<Option<Credential>, StoreError> {
        let client = self.client().await?;
        let live = match kind {
            CredentialKind::Token => "true",
            CredentialKind::Session => "c.expires_at > now()",
        };
        let sql = format!(
            "SELECT {OPERATOR_COLUMNS}, c.secret_hash FROM {} c JOIN operators o ON o.id = c.operator_id
              WHERE c.selector = $1 AND o.enabled AND {live}",
            kind.table()
        );
        let Some(row) = client.query_opt(&sql, &[&selector]).await? else { return Ok(None) };
        if kind == CredentialKind::Token {
            client.execute("UPDATE operator_tokens SET last_used_at = now() WHERE selector = $1", &[&selector]).await?;
        }
        Ok(Some(Credential { operator: operator_from_row(&row), secret_hash: row.get(6) }))
    }

    /// Ends a session (logout). Ending one that is gone already is not an error.
    pub async fn end_session(&self, selector: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("DELETE FROM operator_sessions WHERE selector = $1", &[&selector]).await?;
        Ok(())
    }

    /// Deletes expired sessions; returns how many.
    pub async fn prune_sessions(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        Ok(client.execute("DELETE FROM operator_sessions WHERE expires_at <= now()", &[]).await?)
    }
}
