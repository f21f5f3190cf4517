//! Claimed devices as a list: each with its model, manufacturer, current owner (the last
//! transfer's recipient, else the claimer) and current status (the last status change, else
//! active), filtered by owner, model, manufacturer or status and paged by device index
//! (`GET /v1/devices`; the roles check's candidate devices of an address).
//!
//! One statement on both databases. An owner filter first narrows the candidates to the
//! devices the address ever received (claims by it, transfers to it: both indexed), then keeps
//! those whose last owner it still is, so a fleet of many devices is not scanned for one owner.

use sqlx::{AnyPool, Row};

use crate::Result;

/// What [`list`] keeps; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Current owner, `0x` and 40 lowercase hex digits (as the mirror stores addresses).
    pub owner: Option<String>,
    /// Model id.
    pub model: Option<i64>,
    /// Manufacturer id (of the device's model).
    pub manufacturer: Option<i64>,
    /// Current status: 1 active, 2 deactivated.
    pub status: Option<i64>,
}

/// One claimed device as [`list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceSummary {
    /// Registry device index.
    pub device_index: i64,
    /// The device's identity address.
    pub device: String,
    /// Its model.
    pub model_id: i64,
    /// Its model's manufacturer (`None` if the model's registration is not mirrored).
    pub manufacturer_id: Option<i64>,
    /// The batch it was provisioned in.
    pub batch_id: i64,
    /// Current owner.
    pub owner: String,
    /// Current status: 1 active, 2 deactivated.
    pub status: i64,
    /// Block of the claim.
    pub claimed_block: i64,
    /// Transaction of the claim.
    pub claimed_tx: String,
}

/// Claimed devices matching `filter` with an index above `after`, by index, at most `limit`.
pub async fn list(
    pool: &AnyPool,
    filter: &DeviceFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<DeviceSummary>> {
    let mut inner = vec!["c.device_index > $1".to_owned()];
    let mut outer = Vec::new();
    let mut n = 1;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.model.is_some() {
        inner.push(format!("c.model_id = {}", next()));
    }
    if filter.manufacturer.is_some() {
        inner.push(format!(
            "c.model_id IN (SELECT model_id FROM models WHERE manufacturer_id = {})",
            next()
        ));
    }
    if filter.owner.is_some() {
        let (a, b, c) = (next(), next(), next());
        inner.push(format!(
            "c.device_index IN (SELECT device_index FROM claims WHERE owner = {a} \
             UNION SELECT device_index FROM transfers WHERE to_address = {b})"
        ));
        outer.push(format!("d.owner = {c}"));
    }
    if filter.status.is_some() {
        outer.push(format!("d.status = {}", next()));
    }
    let limit_param = next();
    let outer = if outer.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", outer.join(" AND "))
    };
    let sql = format!(
        "SELECT d.device_index, d.device, d.model_id, d.manufacturer_id, d.batch_id, d.owner, \
         d.status, d.block_number, d.tx_hash FROM (
  SELECT c.device_index, c.device, c.model_id, m.manufacturer_id, c.batch_id,
    COALESCE((SELECT t.to_address FROM transfers t WHERE t.device_index = c.device_index
              ORDER BY t.block_number DESC, t.log_index DESC LIMIT 1), c.owner) AS owner,
    COALESCE((SELECT s.status FROM status_changes s WHERE s.device_index = c.device_index
              ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1), 1) AS status,
    c.block_number, c.tx_hash
  FROM claims c
  LEFT JOIN (SELECT model_id, MIN(manufacturer_id) AS manufacturer_id FROM models GROUP BY model_id) m
    ON m.model_id = c.model_id
  WHERE {}
) d {outer} ORDER BY d.device_index LIMIT {limit_param}",
        inner.join(" AND ")
    );
    // Only fixed fragments and numbered placeholders are formatted in; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.unwrap_or(-1));
    if let Some(m) = filter.model {
        query = query.bind(m);
    }
    if let Some(m) = filter.manufacturer {
        query = query.bind(m);
    }
    if let Some(o) = &filter.owner {
        query = query.bind(o.clone()).bind(o.clone()).bind(o.clone());
    }
    if let Some(s) = filter.status {
        query = query.bind(s);
    }
    let db = crate::error::db("listing devices");
    let rows = query.bind(limit).fetch_all(pool).await.map_err(&db)?;
    rows.iter()
        .map(|r| {
            Ok(DeviceSummary {
                device_index: r.try_get(0)?,
                device: r.try_get(1)?,
                model_id: r.try_get(2)?,
                manufacturer_id: r.try_get(3)?,
                batch_id: r.try_get(4)?,
                owner: r.try_get(5)?,
                status: r.try_get(6)?,
                claimed_block: r.try_get(7)?,
                claimed_tx: r.try_get(8)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)
}
