//! The OpenAPI document served at `/v1/openapi.json`: the routes, parameters and statuses the
//! handlers declare (`api::ApiDoc`), plus a JSON schema for the body of every read endpoint's
//! `200` and of every error. Row schemas are generated from [`rows::TABLES`], the same
//! description the database schema and the writers use, so a column added to a table appears in
//! the document without another edit; composite bodies (one release, one device, the update
//! answer) are described here and checked against real answers by the API tests
//! (`api::every_endpoint` validates each body against its schema).

use serde_json::{Value as Json, json};

use crate::rows::{self, Kind, TABLES, Table};

/// `#/components/schemas/<name>`.
fn reference(name: &str) -> Json {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array_of(items: Json) -> Json {
    json!({ "type": "array", "items": items })
}

fn nullable(schema: Json) -> Json {
    json!({ "oneOf": [{ "type": "null" }, schema] })
}

/// An object with exactly these required `fields` (others allowed).
fn object(fields: &[(&str, Json)]) -> Json {
    let properties: serde_json::Map<String, Json> = fields
        .iter()
        .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
        .collect();
    let required: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    json!({ "type": "object", "required": required, "properties": properties })
}

fn integer() -> Json {
    json!({ "type": "integer", "format": "int64" })
}

fn string(description: &str) -> Json {
    json!({ "type": "string", "description": description })
}

/// The schema of one row of `table`: every column, each as stored (see [`rows`]: versions,
/// sizes and amounts are decimal text, ids and addresses 0x-hex text).
pub fn row_schema(table: &Table) -> Json {
    let fields: Vec<(&str, Json)> = table
        .columns
        .iter()
        .map(|(name, kind)| {
            let schema = match kind {
                Kind::Int => integer(),
                Kind::OptInt => json!({ "type": ["integer", "null"], "format": "int64" }),
                Kind::Text => json!({ "type": "string" }),
            };
            (*name, schema)
        })
        .collect();
    let mut schema = object(&fields);
    schema["description"] = json!(format!(
        "a row of table `{}`, with the block, block hash, transaction and log index of its event",
        table.name
    ));
    schema
}

/// A page: `items` of `item` and the cursor `next` (null on the last page).
fn page(item: Json) -> Json {
    object(&[
        ("items", array_of(item)),
        ("next", json!({ "type": ["string", "null"] })),
    ])
}

/// Per-outcome counts of distinct reporting devices, and `total`.
fn report_counts() -> Json {
    let mut fields: Vec<(&str, Json)> = otaledger_core::report::Outcome::ALL
        .iter()
        .map(|o| (o.as_str(), integer()))
        .collect();
    fields.push(("total", integer()));
    object(&fields)
}

/// A release's approval row with its signers, as the release and update answers carry it.
fn approval() -> Json {
    json!({ "allOf": [
        reference(rows::RELEASE_APPROVALS.name),
        object(&[("signers", array_of(string("signer address, in approval order")))]),
    ]})
}

/// The named schemas: one per table, and the composite bodies.
fn components() -> serde_json::Map<String, Json> {
    let mut schemas: serde_json::Map<String, Json> = TABLES
        .iter()
        .map(|t| (t.name.to_owned(), row_schema(t)))
        .collect();
    schemas.insert(
        "Error".into(),
        object(&[("error", string("what was wrong, for a person to read"))]),
    );
    schemas.insert(
        "Device".into(),
        object(&[
            ("device_index", integer()),
            ("device", string("the device's identity address")),
            ("model_id", integer()),
            ("manufacturer_id", json!({ "type": ["integer", "null"], "format": "int64" })),
            ("batch_id", integer()),
            ("owner", string("current owner: the last transfer's recipient, else the claimer")),
            ("status", json!({ "type": "integer", "enum": [1, 2], "description": "1 active, 2 deactivated" })),
            ("claimed_block", integer()),
            ("claimed_tx", json!({ "type": "string" })),
        ]),
    );
    schemas
}

/// The `200` body of each read route, by path.
fn bodies() -> Vec<(&'static str, Json)> {
    let release_with_counts = json!({ "allOf": [
        reference(rows::RELEASES.name),
        object(&[("reports", nullable(report_counts()))]),
    ]});
    vec![
        ("/healthz", object(&[("status", json!({ "const": "ok" }))])),
        (
            "/readyz",
            object(&[
                ("ready", json!({ "type": "boolean" })),
                ("head", integer()),
                ("checkpoint", json!({ "type": ["integer", "null"] })),
            ]),
        ),
        (
            "/v1/manufacturers",
            page(reference(rows::MANUFACTURERS.name)),
        ),
        ("/v1/models", page(reference(rows::MODELS.name))),
        ("/v1/releases", page(release_with_counts)),
        (
            "/v1/releases/{id}",
            json!({ "allOf": [
                reference(rows::RELEASES.name),
                object(&[
                    ("approval", nullable(approval())),
                    ("revocations", array_of(reference(rows::REVOCATIONS.name))),
                    ("purchases", array_of(reference(rows::PURCHASES.name))),
                    ("pin", nullable(object(&[
                        ("cid", json!({ "type": "string" })),
                        ("status", json!({ "enum": ["pinned", "unavailable", "invalid"] })),
                        ("detail", string("the number of blocks, the missing block or the error")),
                    ]))),
                    ("reports", nullable(report_counts())),
                ]),
            ]}),
        ),
        (
            "/v1/models/{model}/releases/{version}",
            object(&[
                ("chain_id", integer()),
                ("registry", string("the mirrored UpdateRegistry")),
                ("model_id", integer()),
                ("version", integer()),
                ("release_id", string("the manifest's EIP-712 struct hash")),
                (
                    "manifest",
                    string("0x-hex abi.encode(IUpdateRegistry.Manifest)"),
                ),
                (
                    "approval",
                    string("0x-hex abi.encode(IUpdateRegistry.Approval)"),
                ),
                ("block_number", json!({ "type": ["integer", "null"] })),
                ("tx_hash", json!({ "type": ["string", "null"] })),
            ]),
        ),
        ("/v1/devices", page(reference("Device"))),
        (
            "/v1/devices/{index}",
            object(&[
                ("device_index", integer()),
                ("owner", json!({ "type": "string" })),
                ("status", integer()),
                ("claim", reference(rows::CLAIMS.name)),
                ("transfers", array_of(reference(rows::TRANSFERS.name))),
                (
                    "status_changes",
                    array_of(reference(rows::STATUS_CHANGES.name)),
                ),
                (
                    "purchases",
                    array_of(reference(rows::PURCHASE_DEVICES.name)),
                ),
                ("refunds", array_of(reference(rows::REFUND_DEVICES.name))),
            ]),
        ),
        (
            "/v1/devices/{index}/update",
            object(&[
                ("device_index", integer()),
                ("bundle_cid", json!({ "type": ["string", "null"] })),
                ("release", reference(rows::RELEASES.name)),
                ("approval", nullable(approval())),
                (
                    "signer_set",
                    nullable(object(&[
                        ("manufacturer_id", integer()),
                        ("threshold", json!({ "type": ["integer", "null"] })),
                        ("signers", array_of(json!({ "type": "string" }))),
                        ("block_number", json!({ "type": ["integer", "null"] })),
                    ])),
                ),
            ]),
        ),
        ("/v1/purchases", page(reference(rows::PURCHASES.name))),
    ]
}

/// `doc` (the handlers' document, serialized) with the schemas of `components`, each read
/// route's `200` body and every error status's body.
pub fn with_schemas(mut doc: Json) -> Json {
    let section = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(c) = section.and_then(Json::as_object_mut) {
        let schemas = c.entry("schemas").or_insert_with(|| json!({}));
        if let Some(s) = schemas.as_object_mut() {
            s.extend(components());
        }
    }
    for (path, body) in bodies() {
        if let Some(ok) = doc
            .pointer_mut(&format!("/paths/{}/get/responses/200", escape(path)))
            .and_then(Json::as_object_mut)
        {
            ok.insert(
                "content".into(),
                json!({ "application/json": { "schema": body } }),
            );
        }
    }
    // Every error answer of every route is `{"error": message}`.
    if let Some(paths) = doc.get_mut("paths").and_then(Json::as_object_mut) {
        for item in paths.values_mut().filter_map(Json::as_object_mut) {
            for op in item.values_mut().filter_map(Json::as_object_mut) {
                let Some(responses) = op.get_mut("responses").and_then(Json::as_object_mut) else {
                    continue;
                };
                for (status, response) in responses.iter_mut() {
                    let error = status.starts_with('4') || status.starts_with('5');
                    if let (true, Some(r)) = (error, response.as_object_mut()) {
                        r.entry("content").or_insert_with(
                            || json!({ "application/json": { "schema": reference("Error") } }),
                        );
                    }
                }
            }
        }
    }
    doc
}

/// A path as one JSON-pointer token (`~` → `~0`, `/` → `~1`).
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_row_schema_with_every_column_required() {
        let doc = with_schemas(json!({ "paths": {} }));
        for table in TABLES {
            let schema = &doc["components"]["schemas"][table.name];
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(required, table.column_names().collect::<Vec<_>>());
        }
    }

    #[test]
    fn bodies_are_attached_only_to_declared_routes_and_errors_get_the_error_schema() {
        let doc = with_schemas(json!({ "paths": {
            "/v1/models": { "get": { "responses": { "200": { "description": "x" }, "400": { "description": "y" } } } }
        }}));
        let ok = &doc["paths"]["/v1/models"]["get"]["responses"]["200"];
        assert_eq!(
            ok["content"]["application/json"]["schema"]["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/models"
        );
        let bad = &doc["paths"]["/v1/models"]["get"]["responses"]["400"];
        assert_eq!(
            bad["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
        // A route the handlers do not declare is not invented.
        assert!(doc["paths"].get("/v1/releases").is_none());
    }
}
