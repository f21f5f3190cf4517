//! The indexer as a release source (`client::IndexerSource` over the real indexer's
//! `GET /v1/models/<model>/releases/<version>`), and a lying indexer: a real HTTP server in front
//! of the real indexer that answers another version, another model, another chain, a tampered
//! manifest, a forged approval, endless or announced-oversized data, garbage, or nothing within
//! the timeout. Each lie is refused with its error variant, nothing is installed from it, and the
//! device falls back to the RPC source and installs the published release.
//!
//! The real indexer (`otaledger-indexer`, SQLite in a temporary directory) follows the test's
//! anvil; its API is served on a port like the gateway and the key service of [`Fleet`].

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, Bytes},
    signers::local::PrivateKeySigner,
    sol_types::{SolStruct, SolValue},
};
use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use otaledger_core::{
    bindings::registry::IUpdateRegistry, deployment::Deployment, report::Outcome as ReportOutcome,
};
use otaledger_device_sdk::{
    Error,
    client::{
        IndexerSource, MAX_INDEXER_RESPONSE, Outcome, ReleaseSource, SourceError, Updater,
        UpdaterParts,
    },
};
use otaledger_indexer::{Indexer, IndexerConfig};
use serde_json::Value;

use crate::fleet::{Fleet, Published, nothing_installed, serve};

/// A fleet whose chain a real indexer mirrors, its API on a port.
struct Indexed {
    f: Fleet,
    /// The real indexer's API.
    base: url::Url,
    releases: Vec<Published>,
    _indexer: Indexer,
    _db: tempfile::TempDir,
}

/// Publishes `versions` (each bought for devices[0], its key issued), lets a real indexer
/// follow the chain and serves its API.
async fn indexed(versions: &[u64]) -> Indexed {
    let f = Fleet::new().await;
    let mut releases = Vec::new();
    for v in versions {
        let release = f.publish(*v, 20_000).await;
        f.issue(release.release_id, release.release_id);
        releases.push(release);
    }
    let db = tempfile::tempdir().unwrap();
    let w = &f.w;
    let deployment = Deployment {
        chain_id: w.chain_id,
        registry: *w.registry.address(),
        market: *w.market.address(),
        deployment_block: 0,
        salt: otaledger_core::deploy::DEFAULT_SALT,
        commit: "test".into(),
    };
    let mut config = IndexerConfig::new(
        format!("sqlite://{}", db.path().join("index.db").display()),
        vec![w.anvil.endpoint_url().to_string()],
        deployment,
    );
    config.follow.finality_depth = 3;
    let mut indexer = Indexer::open(config).await.unwrap();
    indexer.sync().await.unwrap();
    let base = serve(otaledger_indexer::api::app(indexer.api_state(u64::MAX))).await;
    Indexed {
        f,
        base,
        releases,
        _indexer: indexer,
        _db: db,
    }
}

impl Indexed {
    fn source(&self, base: &url::Url) -> IndexerSource {
        IndexerSource::with_limits(
            base.clone(),
            self.f.w.chain_id,
            Duration::from_secs(2),
            MAX_INDEXER_RESPONSE,
        )
        .unwrap()
    }

    /// devices[0]'s updater in `dir` over `sources` only.
    fn updater(&self, dir: &std::path::Path, sources: Vec<Box<dyn ReleaseSource>>) -> Updater {
        let parts = UpdaterParts {
            sources,
            ..self.f.parts(dir)
        };
        Updater::new(parts)
    }

    /// The device asks `lying` first and the RPC endpoint second: it installs the latest
    /// published release, and the lie is logged, not reported.
    async fn falls_back_and_installs(&self, lying: &url::Url) {
        let dir = tempfile::tempdir().unwrap();
        let mut updater = self.updater(
            dir.path(),
            vec![Box::new(self.source(lying)), Box::new(self.f.w.honest())],
        );
        let latest = self.releases.last().unwrap();
        let outcome = updater.run_once().await.unwrap();
        assert!(
            matches!(outcome, Outcome::Updated { release_id, .. } if release_id == latest.release_id),
            "{outcome:?}"
        );
        let active = updater.parts().installer.state().unwrap().active;
        let slot = dir.path().join("slots").join(match active {
            otaledger_device_sdk::client::Slot::A => "slot-a.img",
            otaledger_device_sdk::client::Slot::B => "slot-b.img",
        });
        assert_eq!(std::fs::read(slot).unwrap(), latest.image);
        let queued = updater.parts().reports.queued().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].report.outcome, ReportOutcome::Installed);
    }

    /// The device asks `lying` only: the run fails with the returned error and installs
    /// nothing.
    async fn refused_alone(&self, lying: &url::Url) -> Error {
        let dir = tempfile::tempdir().unwrap();
        let mut updater = self.updater(dir.path(), vec![Box::new(self.source(lying))]);
        let err = updater.run_once().await.unwrap_err();
        nothing_installed(dir.path(), &updater, 0);
        err
    }

    /// What the source at `base` says when asked directly for the latest release (the attack
    /// tests publish versions 1, 2, …, so the latest is their count).
    async fn ask(&self, base: &url::Url) -> SourceError {
        let w = &self.f.w;
        let latest = self.releases.len() as u64;
        self.source(base)
            .release(*w.registry.address(), w.model, latest)
            .await
            .unwrap_err()
    }
}

/// How the lying indexer lies.
#[derive(Clone)]
enum Lie {
    /// Answers the real release `version` whatever was asked (an older one: rollback).
    OtherVersion(u64),
    /// The real answer with the manifest's (and the answer's) model changed, the release id
    /// recomputed: a consistent lie about another model.
    OtherModel(u32),
    /// The real answer, claiming another chain id.
    OtherChain,
    /// The real answer with the manifest's bundle CID swapped, the release id recomputed.
    Tampered,
    /// The real answer with the approval's signatures made by keys outside the signer set.
    ForgedApproval(alloy::sol_types::Eip712Domain),
    /// 200 and bytes without end, no `Content-Length`.
    Endless,
    /// 200 with a `Content-Length` above the bound.
    Announced,
    /// 200 and a body that is not JSON.
    Garbage,
    /// Answers after an hour.
    Slow,
}

struct LiarState {
    honest: url::Url,
    lie: Lie,
    http: reqwest::Client,
}

async fn honest_answer(s: &LiarState, model: &str, version: &str) -> Value {
    let url = format!("{}v1/models/{model}/releases/{version}", s.honest);
    s.http.get(url).send().await.unwrap().json().await.unwrap()
}

fn manifest_of(answer: &Value) -> IUpdateRegistry::Manifest {
    let bytes: Bytes = answer["manifest"].as_str().unwrap().parse().unwrap();
    IUpdateRegistry::Manifest::abi_decode(&bytes).unwrap()
}

fn set_manifest(answer: &mut Value, m: &IUpdateRegistry::Manifest) {
    answer["manifest"] = Value::String(Bytes::from(m.abi_encode()).to_string());
    answer["release_id"] = Value::String(otaledger_core::signing::release_id(m).to_string());
}

async fn liar_handler(
    State(s): State<Arc<LiarState>>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    let mut answer = match &s.lie {
        Lie::OtherVersion(v) => honest_answer(&s, &model, &v.to_string()).await,
        _ => honest_answer(&s, &model, &version).await,
    };
    match &s.lie {
        Lie::OtherVersion(_) => {}
        Lie::OtherModel(other) => {
            let mut m = manifest_of(&answer);
            m.modelId = *other;
            set_manifest(&mut answer, &m);
            answer["model_id"] = (*other).into();
        }
        Lie::OtherChain => {
            answer["chain_id"] = (answer["chain_id"].as_u64().unwrap() + 1).into();
        }
        Lie::Tampered => {
            let mut m = manifest_of(&answer);
            m.bundleCid = Bytes::from_static(b"the attacker's bundle");
            set_manifest(&mut answer, &m);
        }
        Lie::ForgedApproval(domain) => {
            let m = manifest_of(&answer);
            let bytes: Bytes = answer["approval"].as_str().unwrap().parse().unwrap();
            let mut approval = IUpdateRegistry::Approval::abi_decode(&bytes).unwrap();
            let mut keys: Vec<PrivateKeySigner> =
                (0..2).map(|_| PrivateKeySigner::random()).collect();
            keys.sort_by_key(|k| k.address());
            let digest = m.eip712_signing_hash(domain);
            approval.signatures = keys
                .iter()
                .flat_map(|k| otaledger_core::signing::sign_compact(k, digest).unwrap())
                .collect::<Vec<u8>>()
                .into();
            answer["approval"] = Value::String(Bytes::from(approval.abi_encode()).to_string());
        }
        Lie::Endless => {
            let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures_util::stream::repeat_with(move || {
                Ok::<_, std::convert::Infallible>(chunk.clone())
            });
            return (StatusCode::OK, Body::from_stream(stream)).into_response();
        }
        Lie::Announced => {
            let body = vec![b' '; MAX_INDEXER_RESPONSE + 1];
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        Lie::Garbage => return (StatusCode::OK, "{\"chain_id\": [garbage").into_response(),
        Lie::Slow => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// A lying indexer in front of `honest`.
async fn liar(honest: &url::Url, lie: Lie) -> url::Url {
    let state = Arc::new(LiarState {
        honest: honest.clone(),
        lie,
        http: reqwest::Client::new(),
    });
    serve(
        Router::new()
            .route("/v1/models/{model}/releases/{version}", get(liar_handler))
            .with_state(state),
    )
    .await
}

/// The device updates with the indexer as its only release source; the indexer's two device
/// endpoints order versions numerically (9 < 10, stored as zero-padded text, `rows::padded`).
#[tokio::test]
async fn the_device_updates_with_only_the_indexer_as_source() {
    let x = indexed(&[9, 10]).await;
    let w = &x.f.w;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let url = format!("{}{path}", x.base);
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, update) = get(format!("v1/devices/{}/update", w.devices[0])).await;
    assert_eq!(status, 200, "{update}");
    assert_eq!(update["release"]["version"], "00000000000000000010");
    assert_eq!(
        update["release"]["release_id"],
        x.releases[1].release_id.to_string()
    );
    let (status, nine) = get(format!("v1/models/{}/releases/9", w.model)).await;
    assert_eq!(status, 200, "{nine}");
    assert_eq!(nine["version"], 9);
    assert_eq!(nine["model_id"], w.model);
    assert_eq!(nine["chain_id"], w.chain_id);
    assert_eq!(
        nine["registry"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        *w.registry.address()
    );
    // The release id named is the manifest's own EIP-712 hash.
    assert_eq!(nine["release_id"], x.releases[0].release_id.to_string());
    assert_eq!(
        otaledger_core::signing::release_id(&manifest_of(&nine)),
        x.releases[0].release_id
    );
    let (status, missing) = get(format!("v1/models/{}/releases/11", w.model)).await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = get(format!("v1/models/{}/releases/x", w.model)).await;
    assert_eq!(status, 400, "{bad}");

    // The source decodes exactly what the registry received.
    let (manifest, approval) = x
        .source(&x.base)
        .release(*w.registry.address(), w.model, 10)
        .await
        .unwrap();
    assert_eq!(
        otaledger_device_sdk::contracts::release_id(&manifest),
        x.releases[1].release_id
    );
    assert_eq!(approval.threshold, 2);
    // A release the indexer does not have is NotFound, not a transport failure.
    let err = x
        .source(&x.base)
        .release(*w.registry.address(), w.model, 11)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::NotFound { version: 11, .. }),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut updater = x.updater(dir.path(), vec![Box::new(x.source(&x.base))]);
    let outcome = updater.run_once().await.unwrap();
    assert!(
        matches!(outcome, Outcome::Updated { version: 10, release_id, .. } if release_id == x.releases[1].release_id),
        "{outcome:?}"
    );
    assert_eq!(
        updater.parts().client.state().unwrap().installed_version,
        10
    );
}

#[tokio::test]
async fn a_lying_indexer_answering_another_version_is_refused() {
    let x = indexed(&[1, 2]).await;
    let lying = liar(&x.base, Lie::OtherVersion(1)).await;
    let err = x.ask(&lying).await;
    assert!(
        matches!(
            err,
            SourceError::WrongRelease {
                requested_version: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = x.refused_alone(&lying).await;
    assert!(
        matches!(err, Error::ReleaseUnavailable { version: 2, .. }),
        "{err}"
    );
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_lying_indexer_answering_another_model_is_refused() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::OtherModel(x.f.w.other_model)).await;
    let err = x.ask(&lying).await;
    assert!(
        matches!(err, SourceError::WrongRelease { requested_model, .. } if requested_model == x.f.w.model),
        "{err}"
    );
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_lying_indexer_answering_for_another_chain_is_refused() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::OtherChain).await;
    let err = x.ask(&lying).await;
    assert!(matches!(err, SourceError::WrongRegistry { .. }), "{err}");
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_lying_indexer_answering_a_tampered_manifest_is_refused() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::Tampered).await;
    // Consistent with itself (the release id is the tampered manifest's): only the chain can
    // tell, and step 3 finds no such release.
    let err = x.refused_alone(&lying).await;
    assert!(matches!(err, Error::ReleaseNotPublished { .. }), "{err}");
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_lying_indexer_answering_a_forged_approval_is_refused() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::ForgedApproval(x.f.w.domain())).await;
    let err = x.refused_alone(&lying).await;
    assert!(
        matches!(err, Error::InvalidSignature { index: 0, recovered: Some(a) } if a != Address::ZERO),
        "{err}"
    );
    assert_eq!(err.step(), Some(4));
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_lying_indexer_sending_endless_or_oversized_data_is_refused_at_the_bound() {
    let x = indexed(&[1]).await;
    let endless = liar(&x.base, Lie::Endless).await;
    let err = x.ask(&endless).await;
    assert!(
        matches!(
            err,
            SourceError::TooLarge {
                max: MAX_INDEXER_RESPONSE,
                announced: None,
                ..
            }
        ),
        "{err}"
    );
    let announced = liar(&x.base, Lie::Announced).await;
    let err = x.ask(&announced).await;
    assert!(
        matches!(err, SourceError::TooLarge { announced: Some(n), .. } if n == MAX_INDEXER_RESPONSE as u64 + 1),
        "{err}"
    );
    x.falls_back_and_installs(&endless).await;
}

#[tokio::test]
async fn a_lying_indexer_sending_garbage_is_refused() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::Garbage).await;
    let err = x.ask(&lying).await;
    assert!(matches!(err, SourceError::Malformed { .. }), "{err}");
    x.falls_back_and_installs(&lying).await;
}

#[tokio::test]
async fn a_slow_indexer_is_abandoned_at_its_timeout() {
    let x = indexed(&[1]).await;
    let lying = liar(&x.base, Lie::Slow).await;
    let err = x.ask(&lying).await;
    assert!(
        matches!(err, SourceError::Timeout { timeout, .. } if timeout == Duration::from_secs(2)),
        "{err}"
    );
    x.falls_back_and_installs(&lying).await;
}
