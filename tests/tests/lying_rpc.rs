//! A lying RPC after a signer rotation: the demo's manufacturer rotates from its 2-of-3
//! set {signer 0, 1, 2} to {signer 0, signer 2, a fresh key}; release 2 is approved by
//! the new set (signer 0 and the fresh key), published and bought for two devices.
//! One device asks its chain through a small real HTTP proxy in front of anvil that
//! answers every JSON-RPC call with anvil's answer, except the publishing transaction
//! (`eth_getTransactionByHash`), whose calldata it rewrites to carry an approval of the
//! same manifest signed by the old set (signers 0 and 1, the rotated-out key among
//! them); then one signed by the old keys but naming the new set. The device refuses
//! both at step 4 (exit 23, class `signatures`: the old set does not hash to the proven
//! `signersHash`; the old signatures do not recover to the new set's members) and keeps
//! its version; the same device through anvil directly installs release 2.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner, sol_types::SolCall};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    device_file::DeviceConfig,
    manifest::{ManifestFile, SignatureFile},
    signing::SignerSet,
};
use otaledger_e2e::{
    TestChain, addr_of, demo_signer_keys, device_run_until_keyed, fleet, gateway,
    installed_version, point_devices, release_sign,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const DEVICES: u32 = 3;
const BUYERS: u32 = 1;
/// The largest request the proxy reads.
const MAX_REQUEST: usize = 1 << 20;

/// A JSON-RPC proxy in front of `upstream` that replaces the `input` of one transaction
/// in `eth_getTransactionByHash` answers.
struct LyingRpc {
    url: String,
    /// The `0x…` calldata it answers for the transaction (none: the truth).
    forged: Arc<Mutex<Option<String>>>,
    /// Answers it rewrote.
    rewrites: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LyingRpc {
    async fn start(upstream: String, tx: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let forged = Arc::new(Mutex::new(None));
        let rewrites = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::new();
        let (f, r) = (forged.clone(), rewrites.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (http, upstream, tx, f, r) = (
                    http.clone(),
                    upstream.clone(),
                    tx.clone(),
                    f.clone(),
                    r.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = serve(sock, &http, &upstream, &tx, &f, &r).await {
                        eprintln!("lying rpc: {e}");
                    }
                });
            }
        });
        Self {
            url,
            forged,
            rewrites,
            task,
        }
    }

    fn lie_with(&self, calldata: &[u8]) {
        *self.forged.lock().unwrap() = Some(alloy::hex::encode_prefixed(calldata));
    }
}

impl Drop for LyingRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/1.1 request (`Content-Length` body) on `sock`: forwarded, maybe rewritten,
/// answered, connection closed.
async fn serve(
    mut sock: TcpStream,
    http: &reqwest::Client,
    upstream: &str,
    tx: &str,
    forged: &Mutex<Option<String>>,
    rewrites: &AtomicUsize,
) -> Result<(), BoxError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_start = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Err("request headers too large".into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..body_start]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    if len > MAX_REQUEST {
        return Err("request too large".into());
    }
    while buf.len() < body_start + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err("request cut short".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request: Value = serde_json::from_slice(&buf[body_start..body_start + len])?;
    let mut answer: Value = http
        .post(upstream)
        .json(&request)
        .send()
        .await?
        .json()
        .await?;
    let asks_for_tx = request["method"] == "eth_getTransactionByHash"
        && request["params"][0]
            .as_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(tx));
    let lie = forged.lock().unwrap().clone();
    if let (true, Some(input), Some(result)) = (asks_for_tx, lie, answer.get_mut("result")) {
        result["input"] = json!(input);
        rewrites.fetch_add(1, Ordering::SeqCst);
    }
    let body = serde_json::to_vec(&answer)?;
    let header = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(header.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.shutdown().await?;
    Ok(())
}

fn set_rpc(dir: &Path, urls: Vec<String>) {
    let mut config = DeviceConfig::load(dir).unwrap();
    config.rpc.urls = urls;
    std::fs::write(dir.join("device.toml"), config.to_toml().unwrap()).unwrap();
}

/// `device run --once` (confirmations 0, until keyed) off the async runtime, which
/// serves the proxy meanwhile.
async fn run(dir: &Path) -> (i32, Vec<Value>) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || device_run_until_keyed(&dir, 0))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_set_approval_from_a_lying_rpc_is_refused_after_the_rotation() {
    let chain = TestChain::spawn();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let state = work.join("state");
    let summary = chain.demo(&state, DEVICES, BUYERS);
    let mfr = summary["manufacturer_id"].as_u64().unwrap().to_string();
    let model = summary["model_id"].as_u64().unwrap().to_string();
    let devices = fleet(&state, &summary);
    let old = demo_signer_keys(&state);
    let fresh = alloy::hex::encode_prefixed(PrivateKeySigner::random().to_bytes());

    // The rotation to {0, 2, fresh}, approved by signers 0 and 2.
    let new_addrs: Vec<String> = [&old[0], &old[2], &fresh]
        .iter()
        .map(|k| addr_of(k))
        .collect();
    chain.rotate_signers(
        &state,
        work,
        &mfr,
        &new_addrs,
        2,
        &[old[0].as_str(), old[2].as_str()],
    );

    // Release 2, approved by the new set (signer 0 and the fresh key), bought for the device.
    let image = work.join("image-v2.bin");
    let image_bytes: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&image, &image_bytes).unwrap();
    let v2 = chain.create_release(&state, &model, 2, 1000, &image, &work.join("v2"));
    let sig = |name: &str| work.join(format!("v2-{name}.sig.json"));
    release_sign(&old[0], &v2.manifest, &sig("0"));
    release_sign(&old[1], &v2.manifest, &sig("1"));
    release_sign(&fresh, &v2.manifest, &sig("new"));
    let published = chain.publish(&state, &v2.manifest, &[sig("0"), sig("new")]);
    let publish_tx = published["tx"].as_str().unwrap().to_owned();
    let device = devices.iter().find(|d| !d.bought).unwrap();
    chain.purchase(&state, &v2.id, &[device.index]);

    // What the proxy hands the device instead of the published approval.
    let file = ManifestFile::load(&v2.manifest).unwrap();
    let to_set = |keys: &[&String]| {
        SignerSet::new(
            keys.iter()
                .map(|k| addr_of(k).parse::<Address>().unwrap())
                .collect(),
            2,
        )
        .unwrap()
    };
    let old_set = to_set(&[&old[0], &old[1], &old[2]]);
    let new_set = to_set(&[&old[0], &old[2], &fresh]);
    let old_sigs = [
        SignatureFile::load(&sig("0")).unwrap(),
        SignatureFile::load(&sig("1")).unwrap(),
    ];
    let calldata = |approval| {
        UpdateRegistry::publishReleaseCall {
            manifest: file.manifest.clone(),
            approval,
        }
        .abi_encode()
    };
    let by_old_set = calldata(file.approval(&old_set, &old_sigs).unwrap());
    // The old keys' signatures under the new set's name.
    let mut disguised = file
        .approval(
            &new_set,
            &[
                SignatureFile::load(&sig("0")).unwrap(),
                SignatureFile::load(&sig("new")).unwrap(),
            ],
        )
        .unwrap();
    disguised.signatures = file.approval(&old_set, &old_sigs).unwrap().signatures;
    let disguised = calldata(disguised);

    // The services; the device asks its chain only through the proxy.
    let gw = gateway(&state.join("ipfs"));
    let ks = chain.key_service(&state, &work.join("keyservice.sqlite"), &mfr, 0);
    point_devices(
        std::slice::from_ref(device),
        &[gw.url.as_str()],
        &[ks.url.as_str()],
        &[],
    );
    let proxy = LyingRpc::start(chain.rpc_url(), publish_tx).await;
    set_rpc(&device.dir, vec![proxy.url.clone()]);
    let before = installed_version(&device.dir);

    for (lie, expected) in [
        (&by_old_set, "approval's signer set hashes to"),
        (&disguised, "not an ascending member of the signer set"),
    ] {
        proxy.lie_with(lie);
        let rewritten = proxy.rewrites.load(Ordering::SeqCst);
        let (code, events) = run(&device.dir).await;
        let result = events.last().cloned().unwrap_or_default();
        assert_eq!(code, 23, "{events:?}");
        assert_eq!(result["class"], "signatures", "{result}");
        assert_eq!(result["step"], 4, "{result}");
        assert!(
            result["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "{result}"
        );
        assert!(
            proxy.rewrites.load(Ordering::SeqCst) > rewritten,
            "the proxy rewrote nothing"
        );
        assert_eq!(installed_version(&device.dir), before);
    }

    // The control: the same device, asking anvil itself, installs release 2.
    set_rpc(&device.dir, vec![chain.rpc_url()]);
    let (code, events) = run(&device.dir).await;
    assert_eq!(code, 0, "{events:?}");
    assert_eq!(installed_version(&device.dir), 2);
}
