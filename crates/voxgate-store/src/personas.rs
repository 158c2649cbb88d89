//! Personas in the store: JSON documents keyed by name. The built-in
//! default persona is not stored until someone replaces it.

use sqlx::Row;
use voxgate_core::persona::PersonaSpec;

use crate::error::StoreError;
use crate::store::Store;

/// Whether a write created a persona or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// There was none by that name.
    Created,
    /// One by that name was replaced.
    Replaced,
}

fn decode(name: &str, spec: &str) -> Result<PersonaSpec, StoreError> {
    serde_json::from_str(spec).map_err(|err| StoreError::CorruptPersona {
        name: name.to_owned(),
        reason: err.to_string(),
    })
}

fn encode(spec: &PersonaSpec) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|err| StoreError::CorruptPersona {
        name: spec.name.clone(),
        reason: err.to_string(),
    })
}

impl Store {
    /// Every stored persona, by name.
    pub async fn list_personas(&self) -> Result<Vec<PersonaSpec>, StoreError> {
        let rows = sqlx::query("SELECT name, spec FROM personas ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(|err| StoreError::query("list personas", err))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name").map_err(|e| corrupt_row(&e))?;
                let spec: String = row.try_get("spec").map_err(|e| corrupt_row(&e))?;
                decode(&name, &spec)
            })
            .collect()
    }

    /// How many personas are stored.
    pub async fn count_personas(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM personas")
            .fetch_one(self.pool())
            .await
            .map_err(|err| StoreError::query("count personas", err))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The stored persona called `name`.
    pub async fn get_persona(&self, name: &str) -> Result<Option<PersonaSpec>, StoreError> {
        let row = sqlx::query("SELECT spec FROM personas WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(|err| StoreError::query("get persona", err))?;
        row.map(|row| {
            let spec: String = row.try_get("spec").map_err(|e| corrupt_row(&e))?;
            decode(name, &spec)
        })
        .transpose()
    }

    /// Stores `spec` only if no persona has its name; `false` if one does.
    pub async fn insert_persona(
        &self,
        spec: &PersonaSpec,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO personas (name, spec, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(spec.name.as_str())
        .bind(encode(spec)?)
        .bind(now_ms)
        .execute(self.pool())
        .await
        .map_err(|err| StoreError::query("insert persona", err))?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores `spec`, replacing any persona of the same name.
    pub async fn put_persona(
        &self,
        spec: &PersonaSpec,
        now_ms: i64,
    ) -> Result<Written, StoreError> {
        let existed = self.get_persona(&spec.name).await?.is_some();
        sqlx::query(
            "INSERT INTO personas (name, spec, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(spec.name.as_str())
        .bind(encode(spec)?)
        .bind(now_ms)
        .execute(self.pool())
        .await
        .map_err(|err| StoreError::query("put persona", err))?;
        Ok(if existed {
            Written::Replaced
        } else {
            Written::Created
        })
    }

    /// Removes the persona called `name`; `false` if there was none.
    pub async fn delete_persona(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM personas WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(|err| StoreError::query("delete persona", err))?;
        Ok(done.rows_affected() > 0)
    }
}

fn corrupt_row(err: &sqlx::Error) -> StoreError {
    StoreError::CorruptPersona {
        name: "?".to_owned(),
        reason: err.to_string(),
    }
}
