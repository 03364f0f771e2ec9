//! Revoked API tokens.

use async_trait::async_trait;

use super::sql::SqlTx;
use super::*;

#[async_trait]
pub trait TokenStore: Send {
    async fn is_token_revoked(&mut self, jti: &str) -> Result<bool>;
    async fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool>;
}

#[async_trait]
impl TokenStore for SqlTx {
    async fn is_token_revoked(&mut self, jti: &str) -> Result<bool> {
        let row = self
            .sql("SELECT jti FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(self)
            .await?;
        Ok(row.is_some())
    }

    async fn revoke_token(&mut self, jti: &str, at: i64, by: &str) -> Result<bool> {
        let r = self.sql(
            "INSERT INTO revoked_tokens (jti, revoked_at, revoked_by) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(at)
        .bind(by)
        .execute(self)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
