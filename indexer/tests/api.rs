//! The read API in-process (`app(state).oneshot(request)`, no port) over a
//! database the indexer filled from a real anvil history, on SQLite and on
//! PostgreSQL: every endpoint, pagination, bad input (400) and unknown ids (404).

mod common;

use axum::http::StatusCode;
use common::{Kind, TestDb, config, get_json as get, get_text as get_lenient};
use otaledger_core::test_support::{Chain, Scenario};
use otaledger_indexer::Indexer;
use serde_json::Value;

async fn every_endpoint(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut scenario = Scenario::register(&chain).await.unwrap();
    scenario.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    let state = indexer.api_state(2);

    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    let (status, doc) = get(&state, "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/readyz",
        "/v1/manufacturers",
        "/v1/models",
        "/v1/releases",
        "/v1/releases/{id}",
        "/v1/models/{model}/releases/{version}",
        "/v1/devices",
        "/v1/devices/{index}",
        "/v1/devices/{index}/update",
        "/v1/purchases",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from the openapi document"
        );
    }
    let params = &doc["paths"]["/v1/releases"]["get"]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "after"),
        "{params}"
    );
    // Not ready before the first pass.
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let head = indexer.sync().await.unwrap().head;
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checkpoint"], head);
    conforms(&doc, "/readyz", status, &body);
    let (status, body) = get(&state, "/healthz").await;
    conforms(&doc, "/healthz", status, &body);

    let (status, body) = get(&state, "/v1/manufacturers").await;
    assert_eq!(status, StatusCode::OK);
    conforms(&doc, "/v1/manufacturers", status, &body);
    let (status, body_models) = get(&state, "/v1/models").await;
    conforms(&doc, "/v1/models", status, &body_models);
    assert_eq!(body["items"][0]["name"], "Acme");
    assert_eq!(body["items"][0]["manufacturer_id"], scenario.manufacturer);
    let model = get(&state, "/v1/models").await.1["items"][0]["model_id"].clone();

    // Three releases of the model, paged one by one with the cursor.
    let mut ids = Vec::new();
    let mut uri = format!("/v1/releases?model={model}&limit=1");
    loop {
        let (status, body) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        conforms(&doc, "/v1/releases", status, &body);
        for item in body["items"].as_array().unwrap() {
            ids.push(item["release_id"].as_str().unwrap().to_owned());
            assert!(item["tx_hash"].as_str().unwrap().starts_with("0x"));
        }
        match body["next"].as_str() {
            Some(next) => uri = format!("/v1/releases?model={model}&limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    let all = get(&state, "/v1/releases?limit=500").await.1;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert!(all["next"].is_null());

    // One release: manifest, approval with the signer set, revocation, purchases.
    let (status, v2) = get(&state, &format!("/v1/releases/{}", ids[1])).await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    conforms(&doc, "/v1/releases/{id}", status, &v2);
    assert_eq!(v2["version"], "00000000000000000002");
    assert_eq!(v2["approval"]["threshold"], 2);
    assert_eq!(v2["approval"]["signers"].as_array().unwrap().len(), 3);
    assert_eq!(v2["revocations"][0]["emergency"], 0);
    assert_eq!(v2["purchases"].as_array().unwrap().len(), 1);
    let buyer = v2["purchases"][0]["buyer"].as_str().unwrap().to_owned();
    let upper = ids[1].to_uppercase().replace("0X", "0x");
    assert_eq!(
        get(&state, &format!("/v1/releases/{upper}")).await.0,
        StatusCode::OK
    );

    // One (model, version) as the device SDK's release source decodes it: the
    // manifest and approval ABI-encoded, the release id the manifest's own hash.
    let (status, one) = get(&state, &format!("/v1/models/{model}/releases/2")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    conforms(&doc, "/v1/models/{model}/releases/{version}", status, &one);
    assert_eq!(one["release_id"], ids[1].as_str());
    assert_eq!(one["version"], 2);
    assert_eq!(one["chain_id"], chain.deployment.chain_id);
    {
        use alloy::sol_types::SolValue;
        use otaledger_core::bindings::registry::IUpdateRegistry::{Approval, Manifest};
        let bytes = |field: &str| -> alloy::primitives::Bytes {
            one[field].as_str().unwrap().parse().unwrap()
        };
        let manifest = Manifest::abi_decode(&bytes("manifest")).unwrap();
        assert_eq!(manifest.version, 2);
        assert_eq!(
            format!("{:#x}", otaledger_core::signing::release_id(&manifest)),
            ids[1]
        );
        let approval = Approval::abi_decode(&bytes("approval")).unwrap();
        assert_eq!(approval.threshold, 2);
        assert_eq!(approval.signers.len(), 3);
    }
    let (status, body) = get(&state, &format!("/v1/models/{model}/releases/99")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for uri in [
        format!("/v1/models/{model}/releases/x"),
        "/v1/models/x/releases/1".to_owned(),
        format!("/v1/models/{model}/releases/-1"),
    ] {
        let (status, body) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }

    // Purchases by buyer (v1 and v2; v3 was revoked before anyone bought it).
    let (status, bought) = get(&state, &format!("/v1/purchases?buyer={buyer}")).await;
    conforms(&doc, "/v1/purchases", status, &bought);
    assert_eq!(bought["items"].as_array().unwrap().len(), 2);
    let of_v1 = get(&state, &format!("/v1/purchases?release={}", ids[0]))
        .await
        .1;
    assert_eq!(of_v1["items"].as_array().unwrap().len(), 1);

    // A device's audit trail: the transferred and deactivated one.
    let index = {
        let rows =
            otaledger_indexer::db::read_table(indexer.pool(), &otaledger_indexer::rows::TRANSFERS)
                .await
                .unwrap();
        match rows[0].values[4] {
            otaledger_indexer::rows::Value::Int(i) => i,
            _ => unreachable!(),
        }
    };
    let (status, d) = get(&state, &format!("/v1/devices/{index}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    conforms(&doc, "/v1/devices/{index}", status, &d);
    assert_eq!(d["owner"], d["transfers"][0]["to_address"]);
    assert_ne!(d["owner"], d["claim"]["owner"]);
    assert_eq!(d["status"], 2); // deactivated after the transfer

    // The update question. Device 0 bought v1 and v2; v2 was revoked and
    // refunded, v3 revoked in an emergency: v1 it is, with what the device
    // needs to verify it. The deactivated device never bought anything: 404.
    let bought_devices = otaledger_indexer::db::read_table(
        indexer.pool(),
        &otaledger_indexer::rows::PURCHASE_DEVICES,
    )
    .await
    .unwrap();
    let first = match &bought_devices[0].values[6] {
        otaledger_indexer::rows::Value::Int(i) => *i,
        other => panic!("{other:?}"),
    };
    let (status, update) = get(&state, &format!("/v1/devices/{first}/update")).await;
    assert_eq!(status, StatusCode::OK, "{update}");
    conforms(&doc, "/v1/devices/{index}/update", status, &update);
    assert_eq!(update["release"]["release_id"], ids[0].as_str());
    assert_eq!(update["release"]["version"], "00000000000000000001");
    assert_eq!(update["bundle_cid"], update["release"]["bundle_cid"]);
    assert_eq!(update["approval"]["threshold"], 2);
    // The current signer set is the rotated one, not the set that approved v1.
    assert_eq!(update["signer_set"]["signers"].as_array().unwrap().len(), 3);
    assert_ne!(
        update["signer_set"]["signers"],
        update["approval"]["signers"]
    );
    let (status, body) = get(&state, &format!("/v1/devices/{index}/update")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        get(&state, "/v1/devices/999999/update").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_lenient(&state, "/v1/devices/x/update").await.0,
        StatusCode::BAD_REQUEST
    );

    // Bad input is 400 with a message; unknown ids are 404.
    for uri in [
        "/v1/releases/0x1234",
        "/v1/releases/zz",
        "/v1/devices/abc",
        "/v1/devices/-1",
        "/v1/releases?limit=0",
        "/v1/releases?limit=501",
        "/v1/releases?after=nonsense",
        "/v1/purchases?buyer=0xnot-an-address",
        "/v1/models?manufacturer=x",
    ] {
        let (status, body) = get_lenient(&state, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let unknown = format!("/v1/releases/0x{}", "ab".repeat(32));
    let (status, body) = get(&state, &unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    conforms(&doc, "/v1/releases/{id}", status, &body);
    assert!(body["error"].as_str().unwrap().contains("no release"));
    let (status, bad) = get(&state, "/v1/devices/0x1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    conforms(&doc, "/v1/devices/{index}", status, &bad);
    assert_eq!(
        get(&state, "/v1/devices/999999").await.0,
        StatusCode::NOT_FOUND
    );

    drop(indexer);
    db.remove().await;
}

/// Checks `value` against `schema`, the subset of JSON Schema the API's document uses (`type`,
/// one or a list; `const`; `enum`; `properties` with `required`; `items`; `$ref` into `doc`;
/// `allOf`; `oneOf`). `Err` names the first mismatch by its JSON path.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .ok_or_else(|| format!("{at}: unresolved {r}"))?;
        return check(doc, target, value, at);
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            other => return Err(format!("{at}: bad type keyword {other}")),
        };
        let is = |t: &str| match t {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            return Err(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Err(format!("{at}: {value} is not {c}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {e:?}"));
    }
    if let Some(object) = value.as_object() {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap_or_default();
            if !object.contains_key(field) {
                return Err(format!("{at}: missing {field}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, sub) in properties {
                if let Some(v) = object.get(name) {
                    check(doc, sub, v, &format!("{at}.{name}"))?;
                }
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(doc, sub, value, at)?;
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|o| check(doc, o, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!(
                "{at}: {value} matches {matching} of oneOf {options:?}"
            ));
        }
    }
    Ok(())
}

/// Asserts `body`, answered with `status` by the route `template`, is what the OpenAPI
/// document `doc` says that route answers with that status.
fn conforms(doc: &Value, template: &str, status: StatusCode, body: &Value) {
    let schema =
        doc["paths"][template]["get"]["responses"][status.as_str()]["content"]["application/json"]
            ["schema"]
            .clone();
    assert!(
        !schema.is_null(),
        "the document gives no body schema for {status} of {template}"
    );
    if let Err(e) = check(doc, &schema, body, "$") {
        panic!("{template} ({status}) does not match its documented schema: {e}\n{body}");
    }
}

/// The checker refuses what the document does not allow (the schema tests can fail).
#[test]
fn the_schema_check_refuses_missing_fields_wrong_types_and_ambiguous_one_of() {
    let doc = serde_json::json!({ "components": { "schemas": {
        "row": { "type": "object", "required": ["a"], "properties": { "a": { "type": "integer" } } }
    }}});
    let row = serde_json::json!({ "$ref": "#/components/schemas/row" });
    let page = serde_json::json!({ "type": "object", "required": ["items"],
        "properties": { "items": { "type": "array", "items": row } } });
    assert!(
        check(
            &doc,
            &page,
            &serde_json::json!({ "items": [{ "a": 1 }] }),
            "$"
        )
        .is_ok()
    );
    for bad in [
        serde_json::json!({}),
        serde_json::json!({ "items": [{}] }),
        serde_json::json!({ "items": [{ "a": "1" }] }),
        serde_json::json!({ "items": {} }),
    ] {
        assert!(check(&doc, &page, &bad, "$").is_err(), "{bad}");
    }
    let either =
        serde_json::json!({ "oneOf": [{ "type": "null" }, { "type": ["integer", "null"] }] });
    assert!(check(&doc, &either, &Value::Null, "$").is_err());
    assert!(check(&doc, &either, &serde_json::json!(3), "$").is_ok());
    let status = serde_json::json!({ "enum": [1, 2] });
    assert!(check(&doc, &status, &serde_json::json!(3), "$").is_err());
}

/// `GET /v1/devices`: every claimed device with its current owner and status, paged by index,
/// and each filter (owner, model, manufacturer, status) keeping exactly the devices of the full
/// list it names, each item agreeing with the device's own audit trail.
async fn devices_are_listed_by_owner_model_manufacturer_and_status(kind: Kind) {
    let chain = Chain::start(&[]).await.unwrap();
    let mut first = Scenario::register(&chain).await.unwrap();
    first.round(&chain).await.unwrap();
    first.round(&chain).await.unwrap();
    let mut second = Scenario::register(&chain).await.unwrap();
    second.round(&chain).await.unwrap();
    let db = TestDb::new(kind).await;
    let mut indexer = Indexer::open(config(&chain, &db, 3)).await.unwrap();
    indexer.sync().await.unwrap();
    let state = indexer.api_state(2);
    let doc = get(&state, "/v1/openapi.json").await.1;

    // The whole list, paged 4 at a time.
    let mut all: Vec<Value> = Vec::new();
    let mut uri = "/v1/devices?limit=4".to_owned();
    loop {
        let (status, body) = get(&state, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        conforms(&doc, "/v1/devices", status, &body);
        all.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next"].as_str() {
            Some(next) => uri = format!("/v1/devices?limit=4&after={next}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 9, "{all:?}");
    let indexes: Vec<i64> = all
        .iter()
        .map(|d| d["device_index"].as_i64().unwrap())
        .collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    // Each item is what the device's audit trail says.
    for d in &all {
        let (status, trail) = get(&state, &format!("/v1/devices/{}", d["device_index"])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(d["owner"], trail["owner"], "{d}");
        assert_eq!(d["status"], trail["status"], "{d}");
        assert_eq!(d["device"], trail["claim"]["device"], "{d}");
        assert_eq!(d["claimed_tx"], trail["claim"]["tx_hash"], "{d}");
    }
    // Three transferred and deactivated devices, one per round, each at a new owner.
    let moved: Vec<&Value> = all.iter().filter(|d| d["status"] == 2).collect();
    assert_eq!(moved.len(), 3, "{all:?}");

    let subset = |pred: &dyn Fn(&Value) -> bool| -> Vec<i64> {
        all.iter()
            .filter(|d| pred(d))
            .map(|d| d["device_index"].as_i64().unwrap())
            .collect()
    };
    let listed = |body: &Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_index"].as_i64().unwrap())
            .collect()
    };
    // By owner, in any case: the claimer keeps the untransferred devices only; a recipient
    // owns what it was given.
    let claimer = all[0]["owner"].as_str().unwrap().to_owned();
    for owner in [
        claimer.clone(),
        moved[0]["owner"].as_str().unwrap().to_owned(),
    ] {
        let upper = format!("0x{}", owner[2..].to_uppercase());
        let (status, body) = get(&state, &format!("/v1/devices?owner={upper}&limit=500")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let expected = subset(&|d| d["owner"] == owner.as_str());
        assert!(!expected.is_empty());
        assert_eq!(listed(&body), expected, "owner {owner}");
    }
    assert!(
        !listed(&get(&state, &format!("/v1/devices?owner={claimer}")).await.1)
            .contains(&moved[0]["device_index"].as_i64().unwrap()),
        "a transferred device is still listed under its claimer"
    );
    let nobody = format!("0x{}", "ee".repeat(20));
    let (status, body) = get(&state, &format!("/v1/devices?owner={nobody}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["items"].as_array().unwrap().is_empty() && body["next"].is_null());

    // By model, by manufacturer, by status, and combined.
    let model = all[0]["model_id"].as_i64().unwrap();
    let body = get(&state, &format!("/v1/devices?model={model}&limit=500"))
        .await
        .1;
    assert_eq!(listed(&body), subset(&|d| d["model_id"] == model));
    for m in [first.manufacturer, second.manufacturer] {
        let body = get(&state, &format!("/v1/devices?manufacturer={m}&limit=500"))
            .await
            .1;
        let expected = subset(&|d| d["manufacturer_id"] == m);
        assert_eq!(listed(&body), expected);
        assert_eq!(expected.len(), if m == first.manufacturer { 6 } else { 3 });
    }
    let body = get(&state, "/v1/devices?status=deactivated&limit=500")
        .await
        .1;
    assert_eq!(listed(&body), subset(&|d| d["status"] == 2));
    let body = get(&state, "/v1/devices?status=active&limit=500").await.1;
    assert_eq!(listed(&body), subset(&|d| d["status"] == 1));
    let uri = format!(
        "/v1/devices?owner={claimer}&manufacturer={}&status=active&limit=500",
        second.manufacturer
    );
    let body = get(&state, &uri).await.1;
    assert_eq!(
        listed(&body),
        subset(&|d| d["owner"] == claimer.as_str()
            && d["manufacturer_id"] == second.manufacturer
            && d["status"] == 1)
    );

    for uri in [
        "/v1/devices?owner=0x1234",
        "/v1/devices?owner=nobody",
        "/v1/devices?model=x",
        "/v1/devices?model=-1",
        "/v1/devices?manufacturer=1.5",
        "/v1/devices?status=lost",
        "/v1/devices?after=x",
        "/v1/devices?limit=0",
        "/v1/devices?limit=501",
    ] {
        let (status, body) = get_lenient(&state, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    drop(indexer);
    db.remove().await;
}

/// The API's read pool is read-only at the database's own level, and sees what the
/// writer commits; a read held open on it does not stop the writer.
async fn the_read_pool_refuses_writes_and_sees_the_writers_commits(kind: Kind) {
    let db = TestDb::new(kind).await;
    let writer = otaledger_indexer::db::connect(&db.url).await.unwrap();
    let reader = otaledger_indexer::db::connect_reader(&db.url)
        .await
        .unwrap();
    let count = |pool: sqlx::AnyPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM floors")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count(reader.clone()).await, 0);
    let insert = "INSERT INTO floors (block_number, block_hash, tx_hash, log_index, model_id, \
                  min_version) VALUES (1, '0x01', '0x02', 0, 7, '00000000000000000003')";
    let refused = sqlx::query(insert).execute(&reader).await;
    assert!(refused.is_err(), "the read pool wrote a row");
    // Every connection of the pool (held at once, so each is a different one).
    let mut held = Vec::new();
    for _ in 0..READERS {
        held.push(reader.acquire().await.unwrap());
    }
    for conn in &mut held {
        assert!(sqlx::query(insert).execute(&mut **conn).await.is_err());
    }
    drop(held);
    // A reader inside an open transaction does not block the writer (WAL on SQLite).
    let mut open = reader.begin().await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM floors")
        .fetch_one(&mut *open)
        .await
        .unwrap();
    sqlx::query(insert).execute(&writer).await.unwrap();
    open.rollback().await.unwrap();
    assert_eq!(count(reader.clone()).await, 1);
    assert_eq!(count(writer.clone()).await, 1);
    reader.close().await;
    writer.close().await;
    db.remove().await;
}

/// Connections of the read pool, each of which must refuse writes.
const READERS: u32 = otaledger_indexer::db::READ_CONNECTIONS;

both_databases! {
    every_endpoint,
    devices_are_listed_by_owner_model_manufacturer_and_status,
    the_read_pool_refuses_writes_and_sees_the_writers_commits,
}
