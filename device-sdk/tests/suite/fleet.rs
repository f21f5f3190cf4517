//! The update world: [`World`] plus what steps 5–9 need, all real: a CP-ABE authority, bundles
//! sealed with `otaledger_core::bundle`, the real gateway (`otaledger-ipfs` server) over a block
//! store, a key service implementing the key-service contract (`GET /v1/keys/<release>/<device>`,
//! 404 until issued) and an install-report receiver implementing the reports contract
//! (202/403/409). Malicious transports are made by the tests from these.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use axum::{
    Router,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use otaledger_core::{
    bindings::registry::IUpdateRegistry,
    bundle::{
        BundleSpec, ReleaseTarget, SealOptions, default_policy, model_attribute, release_attribute,
        seal,
    },
    key_delivery::{KeyDelivery, identity_public_key},
    manifest::ManifestBuilder,
    report::SignedReport,
};
use otaledger_cpabe::{MasterKey, PublicKey, keygen, rand_core::OsRng, setup};
use otaledger_device_sdk::client::{
    FileInstaller, HttpKeyService, ImageHashCheck, ReportQueue, Updater, UpdaterParts,
};
use otaledger_ipfs::{Blockstore, Cid, FetchOptions, GatewayConfig, ImportOptions, Profile};

use crate::common::{PRICE, World, to_device};
use crate::mined;

/// Serves `router` on 127.0.0.1 for the rest of the test.
pub(crate) async fn serve(router: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}/").parse().unwrap()
}

/// A port nothing listens on (connection refused).
pub(crate) fn dead_url() -> url::Url {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/").parse().unwrap()
}

/// What the key service issues: per (asked release, device), the release the delivery is for.
#[derive(Default)]
pub(crate) struct Issued {
    pub(crate) deliveries: HashMap<(B256, u64), B256>,
}

struct KeyServiceState {
    chain_id: u64,
    registry: Address,
    signer: PrivateKeySigner,
    master: MasterKey,
    /// device index → identity public key.
    devices: HashMap<u64, Vec<u8>>,
    /// release id → (model, version).
    releases: Mutex<HashMap<B256, (u32, u64)>>,
    issued: Mutex<Issued>,
}

async fn key_handler(
    State(s): State<Arc<KeyServiceState>>,
    UrlPath((release, device)): UrlPath<(String, String)>,
) -> Response {
    let (Ok(release), Ok(device)) = (release.parse::<B256>(), device.parse::<u64>()) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"malformed path"}"#).into_response();
    };
    let Some(for_release) = s
        .issued
        .lock()
        .unwrap()
        .deliveries
        .get(&(release, device))
        .copied()
    else {
        return (StatusCode::NOT_FOUND, r#"{"error":"not issued"}"#).into_response();
    };
    let (model, version) = s.releases.lock().unwrap()[&for_release];
    let key = keygen(
        &s.master,
        &[model_attribute(model), release_attribute(model, version)],
        &mut OsRng,
    )
    .unwrap();
    let delivery = KeyDelivery::seal(
        s.chain_id,
        s.registry,
        for_release,
        &s.devices[&device],
        &key,
        &s.signer,
    )
    .unwrap();
    (
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        delivery.to_bytes().unwrap(),
    )
        .into_response()
}

/// The reports receiver's view.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) accepted: Vec<SignedReport>,
    pub(crate) duplicates: usize,
}

struct ReceiverState {
    device_index: u64,
    device: Address,
    received: Mutex<Received>,
}

async fn report_handler(State(s): State<Arc<ReceiverState>>, body: axum::body::Bytes) -> Response {
    let Ok(report) = SignedReport::from_json(&body) else {
        return (StatusCode::BAD_REQUEST, "{}").into_response();
    };
    if report.report.device_index != s.device_index {
        return (StatusCode::NOT_FOUND, "{}").into_response();
    }
    if report.signer().ok() != Some(s.device) {
        return (StatusCode::FORBIDDEN, "{}").into_response();
    }
    let mut r = s.received.lock().unwrap();
    let highest = r.accepted.last().map_or(0, |a| a.report.nonce);
    if report.report.nonce <= highest {
        r.duplicates += 1;
        return (StatusCode::CONFLICT, "{}").into_response();
    }
    r.accepted.push(report);
    (StatusCode::ACCEPTED, r#"{"accepted":true}"#).into_response()
}

/// A published release with its real bundle.
pub(crate) struct Published {
    pub(crate) release_id: B256,
    pub(crate) image: Vec<u8>,
    /// The bundle as published (sealed, then as `edit` left it).
    #[allow(dead_code, reason = "read by benches/update.rs")]
    pub(crate) bundle: Vec<u8>,
    /// The bundle's CID.
    #[allow(dead_code, reason = "read by benches/update.rs")]
    pub(crate) cid: Cid,
    /// The manifest as published (the device's type).
    #[allow(dead_code, reason = "read by the suite, not benches/update.rs")]
    pub(crate) manifest: otaledger_device_sdk::Manifest,
}

/// The world of a whole update.
pub(crate) struct Fleet {
    pub(crate) w: World,
    pub(crate) params: PublicKey,
    pub(crate) store: Blockstore,
    _store_dir: tempfile::TempDir,
    /// The real gateway over `store`.
    pub(crate) gateway: url::Url,
    keys: Arc<KeyServiceState>,
    /// The key service.
    pub(crate) key_service: url::Url,
    pub(crate) key_service_address: Address,
    /// devices[0]'s identity key.
    pub(crate) device_key: PrivateKeySigner,
    receiver: Arc<ReceiverState>,
    /// The reports receiver.
    pub(crate) reports: url::Url,
}

impl Fleet {
    pub(crate) async fn new() -> Self {
        let w = World::new().await;
        let (params, master) = setup(&mut OsRng);
        let store_dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(store_dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let gw_store = store.clone();
        tokio::spawn(async move {
            otaledger_ipfs::serve(
                listener,
                gw_store,
                GatewayConfig::default(),
                std::future::pending(),
            )
            .await
            .unwrap();
        });
        // The World's devices: identity keys 0x21…, 0x22…, 0x23… (see `World::with_salt`).
        let device_keys: Vec<PrivateKeySigner> = (1..=3u8)
            .map(|i| PrivateKeySigner::from_bytes(&B256::repeat_byte(0x20 + i)).unwrap())
            .collect();
        let mut devices = HashMap::new();
        devices.insert(w.devices[0], identity_public_key(&device_keys[0]));
        devices.insert(w.devices[1], identity_public_key(&device_keys[1]));
        devices.insert(w.other_device, identity_public_key(&device_keys[2]));
        let signer = PrivateKeySigner::random();
        let key_service_address = signer.address();
        let keys = Arc::new(KeyServiceState {
            chain_id: w.chain_id,
            registry: *w.registry.address(),
            signer,
            master,
            devices,
            releases: Mutex::default(),
            issued: Mutex::default(),
        });
        let key_service = serve(
            Router::new()
                .route("/v1/keys/{release}/{device}", get(key_handler))
                .with_state(keys.clone()),
        )
        .await;
        let receiver = Arc::new(ReceiverState {
            device_index: w.devices[0],
            device: device_keys[0].address(),
            received: Mutex::default(),
        });
        let reports = serve(
            Router::new()
                .route("/v1/reports", post(report_handler))
                .with_state(receiver.clone()),
        )
        .await;
        Self {
            w,
            params,
            store,
            _store_dir: store_dir,
            gateway,
            keys,
            key_service,
            key_service_address,
            device_key: device_keys[0].clone(),
            receiver,
            reports,
        }
    }

    /// Adds `bytes` to the block store (Kubo's CIDv1 profile), served by the gateway.
    pub(crate) fn add(&self, bytes: &[u8]) -> Cid {
        otaledger_ipfs::import(
            bytes,
            &ImportOptions::profile(Profile::KuboV1),
            &mut &self.store,
            &mut |_| {},
        )
        .unwrap()
        .root
    }

    /// Seals `image` for `version` of the devices' model, lets `edit` change the bundle bytes
    /// and the manifest (an insider or a broken build), adds the bundle to the store, publishes
    /// the manifest with the threshold's approval, buys it for devices[0] and settles.
    pub(crate) async fn publish_with(
        &self,
        version: u64,
        image: Vec<u8>,
        edit: impl FnOnce(&mut Vec<u8>, &mut IUpdateRegistry::Manifest),
    ) -> Published {
        self.publish_stored(version, image, edit, Self::add).await
    }

    /// [`Fleet::publish_with`], the bundle added to the store by `add` (a DAG of the test's
    /// own making), which returns its root.
    pub(crate) async fn publish_stored(
        &self,
        version: u64,
        image: Vec<u8>,
        edit: impl FnOnce(&mut Vec<u8>, &mut IUpdateRegistry::Manifest),
        add: impl FnOnce(&Self, &[u8]) -> Cid,
    ) -> Published {
        let w = &self.w;
        let policy = default_policy(w.model, version);
        let mut bundle = Vec::new();
        let sealed = seal(
            &self.params,
            &BundleSpec {
                target: ReleaseTarget {
                    chain_id: w.chain_id,
                    registry: *w.registry.address(),
                    model_id: w.model,
                    version,
                },
                policy: &policy,
                options: SealOptions::default(),
            },
            image.as_slice(),
            image.len() as u64,
            &mut bundle,
            &mut OsRng,
        )
        .unwrap();
        let mut m = ManifestBuilder::new(&sealed, Vec::new())
            .expiry(w.timestamp().await + 365 * 24 * 3600)
            .build();
        m.price = PRICE;
        edit(&mut bundle, &mut m);
        let cid = add(self, &bundle);
        // The approval is checked by the device from the chain's copy (`ReleaseSource`).
        m.bundleCid = cid.to_bytes().into();
        // An edited size is kept (a manifest announcing another size than the DAG's).
        if m.bundleSize == sealed.bundle_len {
            m.bundleSize = bundle.len() as u64;
        }
        if m.bundleSha256 == sealed.bundle_sha256 {
            use sha2::Digest;
            m.bundleSha256 = B256::from(<[u8; 32]>::from(sha2::Sha256::digest(&bundle)));
        }
        let approval = w.approve(&m);
        mined!(w.registry.publishRelease(m.clone(), approval.clone()));
        mined!(
            w.market
                .purchase(m.clone().into(), vec![w.devices[0]])
                .value(U256::from(PRICE))
        );
        w.settle().await;
        let manifest = to_device(&m);
        let release_id = otaledger_device_sdk::contracts::release_id(&manifest);
        self.keys
            .releases
            .lock()
            .unwrap()
            .insert(release_id, (w.model, version));
        Published {
            release_id,
            image,
            bundle,
            cid,
            manifest,
        }
    }

    /// An honest release of `len` pseudo-random bytes.
    pub(crate) async fn publish(&self, version: u64, len: usize) -> Published {
        self.publish_with(version, image(version, len), |_, _| {})
            .await
    }

    /// The key service issues devices[0] its key for `release` (a delivery for `delivered`).
    pub(crate) fn issue(&self, release: B256, delivered: B256) {
        self.keys
            .issued
            .lock()
            .unwrap()
            .deliveries
            .insert((release, self.w.devices[0]), delivered);
    }

    /// The key service issues device `device` (any of the World's) its key for `release` (a
    /// delivery for `delivered`, sealed to that device's identity key).
    pub(crate) fn issue_to(&self, device: u64, release: B256, delivered: B256) {
        self.keys
            .issued
            .lock()
            .unwrap()
            .deliveries
            .insert((release, device), delivered);
    }

    /// The receiver's accepted reports and duplicate count.
    pub(crate) fn received(&self) -> (Vec<SignedReport>, usize) {
        let r = self.receiver.received.lock().unwrap();
        (r.accepted.clone(), r.duplicates)
    }

    /// devices[0]'s updater parts, its files in `dir`, over the honest transports and no
    /// report receivers.
    pub(crate) fn parts(&self, dir: &Path) -> UpdaterParts {
        let w = &self.w;
        let rpcs: Vec<Box<dyn otaledger_device_sdk::client::Rpc>> = vec![Box::new(w.honest())];
        let mut limits =
            otaledger_device_sdk::Limits::new(otaledger_device_sdk::Quorum::majority(1).unwrap());
        limits.confirmations = crate::common::CONFIRMATIONS;
        let client = otaledger_device_sdk::client::Client::new(
            w.config(w.devices[0]),
            limits,
            rpcs,
            Box::new(otaledger_device_sdk::client::SystemClock),
            Box::new(otaledger_device_sdk::client::FileStorage::new(
                dir.join("state.json"),
            )),
        )
        .unwrap();
        UpdaterParts {
            client,
            sources: vec![Box::new(w.honest())],
            key_services: vec![Box::new(
                HttpKeyService::new(self.key_service.clone()).unwrap(),
            )],
            key_service: self.key_service_address,
            identity: self.device_key.clone(),
            gateways: vec![self.gateway.clone()],
            fetch: FetchOptions::default(),
            installer: Box::new(FileInstaller::new(dir.join("slots")).unwrap()),
            health: Box::new(ImageHashCheck),
            reports: ReportQueue::new(dir.join("reports.json")),
            sinks: Vec::new(),
            work_dir: dir.join("download"),
        }
    }

    pub(crate) fn updater(&self, dir: &Path) -> Updater {
        Updater::new(self.parts(dir))
    }

    /// The CP-ABE key the key service delivers for `version` of the devices' model.
    #[allow(dead_code, reason = "used by benches/update.rs")]
    pub(crate) fn secret_key(&self, version: u64) -> otaledger_cpabe::SecretKey {
        let model = self.w.model;
        keygen(
            &self.keys.master,
            &[model_attribute(model), release_attribute(model, version)],
            &mut OsRng,
        )
        .unwrap()
    }

    /// What another process needs to run devices[0]'s updater in `dir` over the honest
    /// transports ([`ChildSpec::parts`] builds the same parts as [`Fleet::parts`]).
    pub(crate) fn child_spec(&self, dir: &Path) -> ChildSpec {
        let w = &self.w;
        ChildSpec {
            rpc: w.anvil.endpoint_url().to_string(),
            chain_id: w.chain_id,
            registry: *w.registry.address(),
            market: *w.market.address(),
            manufacturer_id: w.manufacturer,
            model_id: w.model,
            device_index: w.devices[0],
            key_service: self.key_service.to_string(),
            key_service_address: self.key_service_address,
            identity: self.device_key.to_bytes(),
            gateway: self.gateway.to_string(),
            dir: dir.to_path_buf(),
        }
    }
}

/// devices[0]'s updater as plain values, passed to a child process (the power-cut test, the
/// update benchmark) as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChildSpec {
    pub(crate) rpc: String,
    pub(crate) chain_id: u64,
    pub(crate) registry: Address,
    pub(crate) market: Address,
    pub(crate) manufacturer_id: u32,
    pub(crate) model_id: u32,
    pub(crate) device_index: u64,
    pub(crate) key_service: String,
    pub(crate) key_service_address: Address,
    pub(crate) identity: B256,
    pub(crate) gateway: String,
    /// The device's directory (state, slots, reports, downloads).
    pub(crate) dir: std::path::PathBuf,
}

impl ChildSpec {
    /// The updater parts [`Fleet::parts`] builds, from these values.
    pub(crate) fn parts(&self) -> UpdaterParts {
        use otaledger_device_sdk::client::{Client, FileStorage, HttpRpc, SystemClock};
        let rpc = || HttpRpc::new(self.rpc.parse().unwrap()).unwrap();
        let mut limits =
            otaledger_device_sdk::Limits::new(otaledger_device_sdk::Quorum::majority(1).unwrap());
        limits.confirmations = crate::common::CONFIRMATIONS;
        let config = otaledger_device_sdk::DeviceConfig {
            chain_id: self.chain_id,
            registry: self.registry,
            market: self.market,
            manufacturer_id: self.manufacturer_id,
            model_id: self.model_id,
            device_index: self.device_index,
        };
        let client = Client::new(
            config,
            limits,
            vec![Box::new(rpc())],
            Box::new(SystemClock),
            Box::new(FileStorage::new(self.dir.join("state.json"))),
        )
        .unwrap();
        UpdaterParts {
            client,
            sources: vec![Box::new(rpc())],
            key_services: vec![Box::new(
                HttpKeyService::new(self.key_service.parse().unwrap()).unwrap(),
            )],
            key_service: self.key_service_address,
            identity: PrivateKeySigner::from_bytes(&self.identity).unwrap(),
            gateways: vec![self.gateway.parse().unwrap()],
            fetch: FetchOptions::default(),
            installer: Box::new(FileInstaller::new(self.dir.join("slots")).unwrap()),
            health: Box::new(ImageHashCheck),
            reports: ReportQueue::new(self.dir.join("reports.json")),
            sinks: Vec::new(),
            work_dir: self.dir.join("download"),
        }
    }
}

/// Deterministic image bytes.
pub(crate) fn image(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts nothing was installed: no slot written or pending, the installed version unchanged.
pub(crate) fn nothing_installed(dir: &Path, updater: &Updater, installed: u64) {
    let p = updater.parts();
    let boot = p.installer.state().unwrap();
    assert_eq!(boot.pending, None, "no install pending");
    assert_eq!(boot.active_version, installed);
    assert_eq!(p.client.state().unwrap().installed_version, installed);
    let inactive = dir.join("slots").join(match boot.active {
        otaledger_device_sdk::client::Slot::A => "slot-b.img",
        otaledger_device_sdk::client::Slot::B => "slot-a.img",
    });
    if installed == 0 {
        assert!(!inactive.exists(), "nothing reached the inactive slot");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("download"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no download left: {leftovers:?}");
    // No slot written halfway either (`<slot>.partial`).
    let partial: Vec<_> = std::fs::read_dir(dir.join("slots"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    assert!(partial.is_empty(), "a slot written halfway: {partial:?}");
}
