//! From logs to table rows: every event of both contracts, decoded through
//! the `sol!` bindings' event types, becomes rows of the normalized tables of
//! `migrations/` (see [`TABLES`]); a release's approval comes from its
//! publishing transaction's calldata, decoded as the bindings' `publishRelease` call. The matches over the
//! bindings' event enums are exhaustive: an event added to a contract does not
//! compile until it has a table.

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::Log,
    sol_types::{SolCall, SolEvent, SolEventInterface},
};
use otaledger_core::{
    bindings::{
        market::UpdateMarket::UpdateMarketEvents,
        registry::{
            IUpdateRegistry::Approval,
            UpdateRegistry::{ReleasePublished, UpdateRegistryEvents, publishReleaseCall},
        },
    },
    follow::rpc::{Rpc, TransactionInput},
};

use crate::{Error, Result};

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `BIGINT NOT NULL`.
    Int,
    /// `BIGINT`, nullable.
    OptInt,
    /// `TEXT NOT NULL`.
    Text,
}

/// One table of the schema: its name and columns, in insert order.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    pub(crate) columns: &'static [(&'static str, Kind)],
    /// Whether rows carry a `position` (lists inside one event).
    pub(crate) positioned: bool,
}

impl Table {
    /// Column names, in insert order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|(name, _)| *name)
    }
}

/// A string from the chain (a name, a CID, a revocation reason) as stored: each NUL
/// character becomes U+FFFD, on both databases. Anyone can register a manufacturer
/// or a model under any name, and PostgreSQL's TEXT cannot hold NUL: stored as it
/// came, such a name stopped every PostgreSQL indexer at that block
/// (`sync::postgres::nul_characters_in_chain_strings_do_not_stop_the_indexer`).
/// SQLite stores the same, so both mirrors and `verify` agree; the only loss is
/// that a NUL reads as U+FFFD.
pub fn chain_text(s: String) -> Value {
    if s.contains('\0') {
        Value::Text(s.replace('\0', "\u{fffd}"))
    } else {
        Value::Text(s)
    }
}

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A BIGINT.
    Int(i64),
    /// A TEXT.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// One row for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The table.
    pub table: &'static Table,
    /// Values in the table's column order.
    pub values: Vec<Value>,
}

use Kind::{Int, OptInt, Text};

macro_rules! tables {
    ($($konst:ident $name:literal positioned=$pos:literal [$(($col:literal, $kind:expr)),* $(,)?];)*) => {
        $(
            #[doc = concat!("The `", $name, "` table.")]
            pub static $konst: Table = Table {
                name: $name,
                columns: &[
                    ("block_number", Int),
                    ("block_hash", Text),
                    ("tx_hash", Text),
                    ("log_index", Int),
                    $(($col, $kind),)*
                ],
                positioned: $pos,
            };
        )*
        /// Every event table, in schema order.
        pub static TABLES: &[&Table] = &[$(&$konst),*];
    };
}

tables! {
    MANUFACTURERS "manufacturers" positioned=false [("manufacturer_id", Int), ("operator", Text), ("payee", Text), ("name", Text), ("params_cid", Text)];
    SIGNER_SETS "signer_sets" positioned=false [("manufacturer_id", Int), ("nonce", OptInt), ("threshold", Int)];
    SIGNER_SET_MEMBERS "signer_set_members" positioned=true [("position", Int), ("manufacturer_id", Int), ("signer", Text)];
    MANUFACTURER_UPDATES "manufacturer_updates" positioned=false [("manufacturer_id", Int), ("nonce", Int), ("operator", Text), ("payee", Text)];
    PARAMS_CIDS "params_cids" positioned=false [("manufacturer_id", Int), ("params_cid", Text)];
    MODELS "models" positioned=false [("model_id", Int), ("manufacturer_id", Int), ("min_version", Text), ("name", Text)];
    FLOORS "floors" positioned=false [("model_id", Int), ("min_version", Text)];
    BATCHES "batches" positioned=false [("batch_id", Int), ("manufacturer_id", Int), ("first_index", Int), ("device_count", Int), ("root", Text), ("leaves_cid", Text)];
    CLAIMS "claims" positioned=false [("device_index", Int), ("owner", Text), ("device", Text), ("model_id", Int), ("batch_id", Int)];
    TRANSFERS "transfers" positioned=false [("device_index", Int), ("from_address", Text), ("to_address", Text)];
    STATUS_CHANGES "status_changes" positioned=false [("device_index", Int), ("status", Int)];
    RELEASES "releases" positioned=false [
        ("release_id", Text), ("model_id", Int), ("version", Text), ("bundle_sha256", Text),
        ("bundle_size", Text), ("bundle_cid", Text), ("image_sha256", Text), ("price", Text),
        ("payment_token", Text), ("policy_id", Text), ("expiry", Text), ("metadata_hash", Text),
        ("signer_mask", Text),
    ];
    RELEASE_APPROVALS "release_approvals" positioned=false [("release_id", Text), ("threshold", Int), ("signatures", Text)];
    RELEASE_APPROVAL_SIGNERS "release_approval_signers" positioned=true [("position", Int), ("release_id", Text), ("signer", Text)];
    REVOCATIONS "revocations" positioned=false [("release_id", Text), ("model_id", Int), ("emergency", Int), ("reason", Text)];
    PURCHASES "purchases" positioned=false [("release_id", Text), ("buyer", Text), ("amount", Text), ("token", Text)];
    PURCHASE_DEVICES "purchase_devices" positioned=true [("position", Int), ("release_id", Text), ("device_index", Int)];
    REFUNDS "refunds" positioned=false [("release_id", Text), ("owner", Text), ("amount", Text), ("token", Text)];
    REFUND_DEVICES "refund_devices" positioned=true [("position", Int), ("release_id", Text), ("device_index", Int)];
    WITHDRAWALS "withdrawals" positioned=false [("release_id", Text), ("manufacturer_id", Int), ("payee", Text), ("amount", Text), ("token", Text)];
}

/// A uint64 the manufacturer chooses, as 20-digit zero-padded decimal text
/// (text order = numeric order, no value truncated).
pub fn padded(v: u64) -> Value {
    Value::Text(format!("{v:020}"))
}

fn hex(bytes: &[u8]) -> Value {
    Value::Text(format!("0x{}", alloy::hex::encode(bytes)))
}

fn address(a: Address) -> Value {
    hex(a.as_slice())
}

fn hash(h: B256) -> Value {
    hex(h.as_slice())
}

fn amount(a: U256) -> Value {
    Value::Text(a.to_string())
}

fn int(v: impl Into<u64>, column: &'static str) -> Result<Value> {
    let v: u64 = v.into();
    i64::try_from(v)
        .map(Value::Int)
        .map_err(|_| Error::ValueOutOfRange { column, value: v })
}

/// The block position of a log (validated complete by the follower).
fn position(log: &Log) -> Result<[Value; 4]> {
    let missing = || Error::IncompleteLog {
        tx: log.transaction_hash,
    };
    Ok([
        int(log.block_number.ok_or_else(missing)?, "block_number")?,
        hash(log.block_hash.ok_or_else(missing)?),
        hash(log.transaction_hash.ok_or_else(missing)?),
        int(log.log_index.ok_or_else(missing)?, "log_index")?,
    ])
}

fn row(table: &'static Table, at: &[Value; 4], rest: Vec<Value>) -> Row {
    let mut values = at.to_vec();
    values.extend(rest);
    debug_assert_eq!(values.len(), table.columns.len(), "{}", table.name);
    Row { table, values }
}

/// The transactions whose calldata [`decode`] needs: those of `ReleasePublished`
/// logs of `registry`.
pub fn needs_input(log: &Log, registry: Address) -> Option<B256> {
    (log.address() == registry && log.topic0() == Some(&ReleasePublished::SIGNATURE_HASH))
        .then_some(log.transaction_hash)
        .flatten()
}

/// The approval in a publishing transaction's calldata, if it is a direct
/// `publishRelease` call to `registry` of the manifest with `release_id`.
fn approval(input: &TransactionInput, registry: Address, release_id: B256) -> Option<Approval> {
    if input.to != Some(registry) {
        return None;
    }
    let call = publishReleaseCall::abi_decode(&input.input).ok()?;
    (otaledger_core::signing::release_id(&call.manifest) == release_id).then_some(call.approval)
}

/// The rows of one log of `registry` or `market` (decoded with the bindings;
/// a log the bindings do not know is an error, never skipped). `inputs` holds
/// the calldata of the transactions [`needs_input`] names.
pub fn decode(
    log: &Log,
    registry: Address,
    market: Address,
    inputs: &HashMap<B256, TransactionInput>,
) -> Result<Vec<Row>> {
    decode_at(log, registry, market, &|tx: &B256| inputs.get(tx))
}

fn decode_at<'i>(
    log: &Log,
    registry: Address,
    market: Address,
    inputs: &dyn Fn(&B256) -> Option<&'i TransactionInput>,
) -> Result<Vec<Row>> {
    let at = position(log)?;
    let undecodable = |source: alloy::sol_types::Error| Error::UndecodableLog {
        tx: log.transaction_hash.unwrap_or_default(),
        log_index: log.log_index.unwrap_or_default(),
        reason: source.to_string(),
    };
    let mut rows = Vec::new();
    if log.address() == registry {
        use UpdateRegistryEvents as E;
        let event = E::decode_log(&log.inner).map_err(undecodable)?.data;
        match event {
            E::ManufacturerRegistered(e) => {
                let id = int(e.manufacturerId, "manufacturer_id")?;
                rows.push(row(
                    &MANUFACTURERS,
                    &at,
                    vec![
                        id.clone(),
                        address(e.operator),
                        address(e.payee),
                        chain_text(e.name),
                        chain_text(e.paramsCid),
                    ],
                ));
                signer_set(&mut rows, &at, id, Value::Null, e.threshold, &e.signers)?;
            }
            E::SignersRotated(e) => {
                let id = int(e.manufacturerId, "manufacturer_id")?;
                let nonce = int(e.nonce, "nonce")?;
                signer_set(&mut rows, &at, id, nonce, e.threshold, &e.signers)?;
            }
            E::ManufacturerUpdated(e) => rows.push(row(
                &MANUFACTURER_UPDATES,
                &at,
                vec![
                    int(e.manufacturerId, "manufacturer_id")?,
                    int(e.nonce, "nonce")?,
                    address(e.operator),
                    address(e.payee),
                ],
            )),
            E::ParamsCidSet(e) => rows.push(row(
                &PARAMS_CIDS,
                &at,
                vec![
                    int(e.manufacturerId, "manufacturer_id")?,
                    chain_text(e.paramsCid),
                ],
            )),
            E::ModelDefined(e) => rows.push(row(
                &MODELS,
                &at,
                vec![
                    int(e.modelId, "model_id")?,
                    int(e.manufacturerId, "manufacturer_id")?,
                    padded(e.minVersion),
                    chain_text(e.name),
                ],
            )),
            E::FloorRaised(e) => rows.push(row(
                &FLOORS,
                &at,
                vec![int(e.modelId, "model_id")?, padded(e.minVersion)],
            )),
            E::DevicesProvisioned(e) => rows.push(row(
                &BATCHES,
                &at,
                vec![
                    int(e.batchId, "batch_id")?,
                    int(e.manufacturerId, "manufacturer_id")?,
                    int(e.firstIndex, "first_index")?,
                    int(e.count, "device_count")?,
                    hash(e.root),
                    chain_text(e.leavesCid),
                ],
            )),
            E::DeviceClaimed(e) => rows.push(row(
                &CLAIMS,
                &at,
                vec![
                    int(e.deviceIndex, "device_index")?,
                    address(e.owner),
                    address(e.device),
                    int(e.modelId, "model_id")?,
                    int(e.batchId, "batch_id")?,
                ],
            )),
            E::DeviceTransferred(e) => rows.push(row(
                &TRANSFERS,
                &at,
                vec![
                    int(e.deviceIndex, "device_index")?,
                    address(e.from),
                    address(e.to),
                ],
            )),
            E::DeviceStatusChanged(e) => rows.push(row(
                &STATUS_CHANGES,
                &at,
                vec![
                    int(e.deviceIndex, "device_index")?,
                    Value::Int(i64::from(e.status)),
                ],
            )),
            E::ReleasePublished(e) => {
                let m = e.manifest;
                rows.push(row(
                    &RELEASES,
                    &at,
                    vec![
                        hash(e.releaseId),
                        int(e.modelId, "model_id")?,
                        padded(e.version),
                        hash(m.bundleSha256),
                        padded(m.bundleSize),
                        hex(&m.bundleCid),
                        hash(m.imageSha256),
                        Value::Text(m.price.to_string()),
                        address(m.paymentToken),
                        hash(m.policyId),
                        padded(m.expiry),
                        hash(m.metadataHash),
                        Value::Text(format!("{:#x}", e.signerMask)),
                    ],
                ));
                let input = log.transaction_hash.and_then(|tx| inputs(&tx));
                if let Some(a) = input.and_then(|i| approval(i, registry, e.releaseId)) {
                    rows.push(row(
                        &RELEASE_APPROVALS,
                        &at,
                        vec![
                            hash(e.releaseId),
                            Value::Int(i64::from(a.threshold)),
                            hex(&a.signatures),
                        ],
                    ));
                    for (i, signer) in a.signers.iter().enumerate() {
                        rows.push(row(
                            &RELEASE_APPROVAL_SIGNERS,
                            &at,
                            vec![
                                int(i as u64, "position")?,
                                hash(e.releaseId),
                                address(*signer),
                            ],
                        ));
                    }
                }
            }
            E::ReleaseRevoked(e) => rows.push(row(
                &REVOCATIONS,
                &at,
                vec![
                    hash(e.releaseId),
                    int(e.modelId, "model_id")?,
                    Value::Int(i64::from(e.emergency)),
                    chain_text(e.reason),
                ],
            )),
        }
    } else if log.address() == market {
        use UpdateMarketEvents as E;
        let event = E::decode_log(&log.inner).map_err(undecodable)?.data;
        match event {
            E::Purchased(e) => {
                rows.push(row(
                    &PURCHASES,
                    &at,
                    vec![
                        hash(e.releaseId),
                        address(e.buyer),
                        amount(e.amount),
                        address(e.token),
                    ],
                ));
                devices(
                    &mut rows,
                    &PURCHASE_DEVICES,
                    &at,
                    e.releaseId,
                    &e.deviceIndexes,
                )?;
            }
            E::Refunded(e) => {
                rows.push(row(
                    &REFUNDS,
                    &at,
                    vec![
                        hash(e.releaseId),
                        address(e.owner),
                        amount(e.amount),
                        address(e.token),
                    ],
                ));
                devices(
                    &mut rows,
                    &REFUND_DEVICES,
                    &at,
                    e.releaseId,
                    &e.deviceIndexes,
                )?;
            }
            E::Withdrawn(e) => rows.push(row(
                &WITHDRAWALS,
                &at,
                vec![
                    hash(e.releaseId),
                    int(e.manufacturerId, "manufacturer_id")?,
                    address(e.payee),
                    amount(e.amount),
                    address(e.token),
                ],
            )),
        }
    } else {
        return Err(Error::ForeignLog {
            address: log.address(),
        });
    }
    Ok(rows)
}

/// The rows of `logs`, fetching the calldata of publishing transactions first
/// (up to 8 requests at once).
pub async fn decode_logs(
    rpc: &Rpc,
    logs: &[Log],
    registry: Address,
    market: Address,
) -> Result<Vec<Row>> {
    decode_logs_with(rpc, logs, registry, market, &HashMap::new()).await
}

/// The rows of `logs` with the publishing transactions' calldata `known`
/// (the follower fetched it in its pipelined fetch stage); calldata missing
/// from `known` is fetched (up to 8 requests at once), so nothing is skipped
/// whatever the follower was configured to fetch.
pub async fn decode_logs_with(
    rpc: &Rpc,
    logs: &[Log],
    registry: Address,
    market: Address,
    known: &HashMap<B256, TransactionInput>,
) -> Result<Vec<Row>> {
    let wanted: Vec<B256> = logs
        .iter()
        .filter_map(|l| needs_input(l, registry))
        .filter(|tx| !known.contains_key(tx))
        .collect();
    let fetched: HashMap<B256, TransactionInput> = if wanted.is_empty() {
        HashMap::new()
    } else {
        rpc.transaction_inputs(&wanted).await?
    };
    decode_all(logs, registry, market, &|tx: &B256| {
        known.get(tx).or_else(|| fetched.get(tx))
    })
}

/// Every row of `logs`, the calldata looked up in `inputs`.
fn decode_all<'i>(
    logs: &[Log],
    registry: Address,
    market: Address,
    inputs: &dyn Fn(&B256) -> Option<&'i TransactionInput>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(logs.len());
    for log in logs {
        rows.extend(decode_at(log, registry, market, inputs)?);
    }
    Ok(rows)
}

/// [`decode_logs_with`] without a node: the rows of `logs` when `known` holds the calldata
/// of every transaction that needs it (see [`needs_input`]), `None` when some is missing
/// (then [`decode_logs_with`] fetches it). The follower's fetch stage runs this beside the
/// previous batch's write.
pub fn decode_logs_known(
    logs: &[Log],
    registry: Address,
    market: Address,
    known: &HashMap<B256, TransactionInput>,
) -> Result<Option<Vec<Row>>> {
    if logs
        .iter()
        .filter_map(|l| needs_input(l, registry))
        .any(|tx| !known.contains_key(&tx))
    {
        return Ok(None);
    }
    decode_all(logs, registry, market, &|tx: &B256| known.get(tx)).map(Some)
}

fn signer_set(
    rows: &mut Vec<Row>,
    at: &[Value; 4],
    manufacturer: Value,
    nonce: Value,
    threshold: u8,
    signers: &[Address],
) -> Result<()> {
    rows.push(row(
        &SIGNER_SETS,
        at,
        vec![
            manufacturer.clone(),
            nonce,
            Value::Int(i64::from(threshold)),
        ],
    ));
    for (i, signer) in signers.iter().enumerate() {
        rows.push(row(
            &SIGNER_SET_MEMBERS,
            at,
            vec![
                int(i as u64, "position")?,
                manufacturer.clone(),
                address(*signer),
            ],
        ));
    }
    Ok(())
}

fn devices(
    rows: &mut Vec<Row>,
    table: &'static Table,
    at: &[Value; 4],
    release: B256,
    indexes: &[u64],
) -> Result<()> {
    for (i, index) in indexes.iter().enumerate() {
        rows.push(row(
            table,
            at,
            vec![
                int(i as u64, "position")?,
                hash(release),
                int(*index, "device_index")?,
            ],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{Bytes, LogData, U256},
        sol_types::SolEvent,
    };
    use otaledger_core::bindings::market::UpdateMarket::Purchased;

    use super::*;

    fn decode_(log: &Log, registry: Address, market: Address) -> Result<Vec<Row>> {
        decode(log, registry, market, &HashMap::new())
    }

    const REGISTRY: Address = Address::repeat_byte(0x11);
    const MARKET: Address = Address::repeat_byte(0x22);

    fn log_of(address: Address, data: LogData) -> Log {
        Log {
            inner: alloy::primitives::Log { address, data },
            block_hash: Some(B256::repeat_byte(1)),
            block_number: Some(7),
            block_timestamp: None,
            transaction_hash: Some(B256::repeat_byte(2)),
            transaction_index: Some(0),
            log_index: Some(3),
            removed: false,
        }
    }

    fn purchase() -> LogData {
        Purchased {
            releaseId: B256::repeat_byte(9),
            buyer: Address::repeat_byte(5),
            deviceIndexes: vec![4, 8],
            amount: U256::from(20u64),
            token: Address::ZERO,
        }
        .encode_log_data()
    }

    #[test]
    fn purchase_becomes_one_row_and_one_per_device() {
        let rows = decode_(&log_of(MARKET, purchase()), REGISTRY, MARKET).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].table.name, "purchases");
        assert_eq!(
            rows[0].values[4],
            Value::Text(format!("0x{}", "09".repeat(32)))
        );
        assert_eq!(rows[0].values[6], Value::Text("20".into()));
        assert_eq!(rows[2].table.name, "purchase_devices");
        assert_eq!(
            rows[2].values[4..],
            [
                Value::Int(1),
                Value::Text(format!("0x{}", "09".repeat(32))),
                Value::Int(8)
            ]
        );
        for r in &rows {
            assert_eq!(r.values.len(), r.table.columns.len());
            assert_eq!(r.values[0], Value::Int(7));
            assert_eq!(r.values[3], Value::Int(3));
        }
    }

    #[test]
    fn mutated_logs_are_refused_not_misread() {
        // A market event at the registry's address is unknown there.
        assert!(matches!(
            decode_(&log_of(REGISTRY, purchase()), REGISTRY, MARKET),
            Err(Error::UndecodableLog { .. })
        ));
        assert!(matches!(
            decode_(
                &log_of(Address::repeat_byte(3), purchase()),
                REGISTRY,
                MARKET
            ),
            Err(Error::ForeignLog { .. })
        ));
        // Truncate, extend and corrupt the data at every length and offset word.
        let good = purchase();
        let data = good.data.to_vec();
        for cut in 0..data.len() {
            let mutated =
                LogData::new_unchecked(good.topics().to_vec(), Bytes::from(data[..cut].to_vec()));
            assert!(
                decode_(&log_of(MARKET, mutated), REGISTRY, MARKET).is_err(),
                "cut {cut}"
            );
        }
        for word in 0..data.len() / 32 {
            let mut bad = data.clone();
            bad[word * 32..word * 32 + 32].fill(0xff);
            let mutated = LogData::new_unchecked(good.topics().to_vec(), Bytes::from(bad));
            // Either refused, or (for a value word) decoded into well-formed rows.
            if let Ok(rows) = decode_(&log_of(MARKET, mutated), REGISTRY, MARKET) {
                assert!(rows.iter().all(|r| r.values.len() == r.table.columns.len()));
            }
        }
        // Missing topics.
        let mutated = LogData::new_unchecked(vec![good.topics()[0]], good.data.clone());
        assert!(decode_(&log_of(MARKET, mutated), REGISTRY, MARKET).is_err());
        // Incomplete log position.
        let mut log = log_of(MARKET, purchase());
        log.block_hash = None;
        assert!(matches!(
            decode_(&log, REGISTRY, MARKET),
            Err(Error::IncompleteLog { .. })
        ));
    }

    #[test]
    fn approval_only_from_a_direct_publish_of_the_same_manifest() {
        use otaledger_core::bindings::registry::IUpdateRegistry::Manifest;
        let manifest = Manifest {
            modelId: 1,
            version: 2,
            bundleSha256: B256::repeat_byte(3),
            bundleSize: 4,
            bundleCid: Bytes::from_static(b"cid"),
            imageSha256: B256::repeat_byte(5),
            price: 6,
            paymentToken: Address::ZERO,
            policyId: B256::repeat_byte(7),
            expiry: 8,
            metadataHash: B256::ZERO,
        };
        let id = otaledger_core::signing::release_id(&manifest);
        let call = publishReleaseCall {
            manifest,
            approval: Approval {
                signers: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
                threshold: 2,
                signatures: Bytes::from(vec![9u8; 128]),
            },
        };
        let input = TransactionInput {
            to: Some(REGISTRY),
            input: call.abi_encode().into(),
        };
        assert_eq!(approval(&input, REGISTRY, id).unwrap().threshold, 2);
        // Another release, another recipient, cut or garbage calldata: none.
        assert!(approval(&input, REGISTRY, B256::ZERO).is_none());
        assert!(approval(&input, MARKET, id).is_none());
        for cut in [0, 4, 36, input.input.len() - 1] {
            let short = TransactionInput {
                to: Some(REGISTRY),
                input: input.input.slice(..cut),
            };
            assert!(approval(&short, REGISTRY, id).is_none(), "cut {cut}");
        }
    }

    #[test]
    fn padded_text_orders_like_numbers() {
        let mut v = [u64::MAX, 10, 9, 0, 1 << 63];
        let mut texts: Vec<Value> = v.iter().map(|x| padded(*x)).collect();
        texts.sort();
        v.sort();
        assert_eq!(texts, v.iter().map(|x| padded(*x)).collect::<Vec<_>>());
        assert_eq!(padded(u64::MAX), Value::Text("18446744073709551615".into()));
    }
}
