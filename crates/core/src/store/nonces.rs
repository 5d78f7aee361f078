//! The replay guard, shared by every gateway instance through PostgreSQL.

use std::time::Duration;

use super::{Store, StoreError};

impl Store {
    /// Records a nonce for a businessId; false when it was already used.
    pub async fn consume_nonce(&self, business_id: &str, nonce: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO used_nonces (business_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&business_id, &nonce],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// Forgets nonces older than `keep`: a request that old is refused by its
    /// timestamp anyway, so its nonce can no longer be replayed.
    pub async fn prune_nonces(&self, keep: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let seconds = keep.as_secs_f64();
        Ok(client
            .execute("DELETE FROM used_nonces WHERE seen_at < now() - make_interval(secs => $1)", &[&seconds])
            .await?)
    }
}
