//! `release create | sign | publish`: from an image file to a threshold-signed
//! release on chain.
//!
//! - `create` (offline): encrypts the image into a bundle (`otaledger-bundle`
//!   v1) under the release policy, imports the bundle into the local IPFS block
//!   store with the `kubo-v1` profile (the CID `ipfs add --cid-version=1`
//!   gives), and writes the unsigned `manifest.json`;
//! - `sign` (offline, one signer): a signature file over the manifest's digest;
//! - `publish`: assembles the signature files into the registry's approval
//!   (ordered by signer), and sends `publishRelease`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

use alloy::primitives::{Address, B256};
use otaledger_core::{
    bindings::registry::UpdateRegistry,
    bundle::{BundleSpec, ReleaseTarget, SealOptions, default_policy, parse_policy, seal},
    fsutil::write_atomic_with,
    manifest::{ManifestBuilder, ManifestFile, SignatureFile},
};
use otaledger_cpabe::{PublicKey, rand_core::OsRng};
use otaledger_ipfs::{Blockstore, ImportError, ImportOptions, Profile};
use serde::Serialize;

use crate::{
    Error, Result,
    chain::{Chain, Mined, mined},
    registry::current_signer_set,
};

/// What `release create` needs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Chain, registry, model and version of the release.
    pub target: ReleaseTarget,
    /// The firmware image.
    pub image: PathBuf,
    /// A policy in `otaledger-cpabe`'s syntax; default
    /// `"model:<modelId>" and "release:<modelId>/<version>"`.
    pub policy: Option<String>,
    /// Price per device (wei, or the token's smallest unit).
    pub price: u128,
    /// ERC-20 to pay in; zero for ETH.
    pub token: Address,
    /// Unix time from which the release can no longer be published or bought.
    pub expiry: u64,
    /// SHA-256 of the release metadata document, or zero.
    pub metadata_hash: B256,
    /// The authority's CP-ABE public parameters (`authority init` writes them).
    pub params: PathBuf,
    /// Directory for `bundle.bin` and `manifest.json` (created; must not hold a manifest yet).
    pub out_dir: PathBuf,
    /// The IPFS block store directory.
    pub store: PathBuf,
    /// Plaintext bytes per bundle segment.
    pub segment_size: u32,
}

/// The stages `create` reports progress for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Encrypting the image (bytes of the image done).
    Encrypting,
    /// Importing the bundle into the block store (bytes of the bundle done).
    Importing,
}

/// What `release create` made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The unsigned manifest.
    pub manifest: PathBuf,
    /// The bundle's CID (`kubo-v1`).
    pub cid: String,
    /// The release id (what signers approve, what buyers buy).
    pub release_id: B256,
    /// The EIP-712 digest signers sign.
    pub digest: B256,
    /// The release policy.
    pub policy: String,
    /// Bundle bytes.
    pub bundle_size: u64,
    /// Image bytes.
    pub image_size: u64,
    /// SHA-256 of the image.
    pub image_sha256: B256,
    /// SHA-256 of the bundle.
    pub bundle_sha256: B256,
}

/// Counts bytes read, for progress.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

/// Chunks of sealed bundle bytes in flight to the importer: with [`PIPE_CHUNK`], about 2 MiB.
const PIPE_DEPTH: usize = 8;
/// Bytes gathered before they are handed to the importer.
const PIPE_CHUNK: usize = 256 * 1024;

/// What goes through the pipe to the importer: bytes, then `End` once the bundle is whole.
enum Chunk {
    Bytes(Vec<u8>),
    End,
}

/// Writes the bundle to its file and a copy, in [`PIPE_CHUNK`] pieces, to the importer.
struct PipeWriter<'w> {
    file: &'w mut dyn Write,
    pipe: SyncSender<Chunk>,
    pending: Vec<u8>,
}

impl<'w> PipeWriter<'w> {
    fn new(file: &'w mut dyn Write, pipe: SyncSender<Chunk>) -> Self {
        Self {
            file,
            pipe,
            pending: Vec::with_capacity(PIPE_CHUNK),
        }
    }

    fn send(&mut self, chunk: Chunk) -> std::io::Result<()> {
        self.pipe
            .send(chunk)
            .map_err(|_| std::io::Error::other("the import into the block store stopped"))
    }

    /// Hands over the last bytes and marks the bundle whole. Without it the importer fails
    /// ("ended early") instead of importing a truncated bundle.
    fn finish(mut self) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.send(Chunk::Bytes(rest))?;
        }
        self.send(Chunk::End)
    }
}

impl Write for PipeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= PIPE_CHUNK {
            let full = std::mem::replace(&mut self.pending, Vec::with_capacity(PIPE_CHUNK));
            self.send(Chunk::Bytes(full))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The importer's end of the pipe.
struct PipeReader {
    pipe: Receiver<Chunk>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl PipeReader {
    fn new(pipe: Receiver<Chunk>) -> Self {
        Self {
            pipe,
            current: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.pipe.recv() {
                Ok(Chunk::Bytes(bytes)) => {
                    self.current = bytes;
                    self.at = 0;
                }
                Ok(Chunk::End) => self.ended = true,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the bundle ended early (sealing stopped)",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Encrypts, bundles, imports and writes the unsigned manifest.
pub fn create(opts: &CreateOptions, progress: &mut dyn FnMut(Stage, u64, u64)) -> Result<Created> {
    let t = &opts.target;
    let policy = match &opts.policy {
        Some(text) => parse_policy(text)?,
        None => default_policy(t.model_id, t.version),
    };
    let params_bytes = std::fs::read(&opts.params).map_err(Error::io(&opts.params))?;
    let params = PublicKey::from_bytes(&params_bytes).map_err(|e| Error::Input {
        field: "--params",
        reason: format!(
            "{} is not CP-ABE public parameters: {e}",
            opts.params.display()
        ),
    })?;
    let image = std::fs::File::open(&opts.image).map_err(Error::io(&opts.image))?;
    let image_len = image.metadata().map_err(Error::io(&opts.image))?.len();
    std::fs::create_dir_all(&opts.out_dir).map_err(Error::io(&opts.out_dir))?;
    let bundle_path = opts.out_dir.join("bundle.bin");
    let manifest_path = opts.out_dir.join("manifest.json");
    if manifest_path.exists() {
        return Err(Error::Input {
            field: "--out",
            reason: format!(
                "{} already exists: use a new directory per release",
                manifest_path.display()
            ),
        });
    }

    let spec = BundleSpec {
        target: *t,
        policy: &policy,
        options: SealOptions {
            segment_size: opts.segment_size,
        },
    };
    let mut report = |done: u64| progress(Stage::Encrypting, done, image_len);
    let reader = Counting {
        inner: std::io::BufReader::with_capacity(256 * 1024, image),
        done: 0,
        report: &mut report,
    };
    // The bundle is imported into the block store while it is being sealed: the sealed bytes
    // go to the bundle file and, through a bounded pipe, to an importer thread that hashes
    // the blocks and hands them to the store's writer thread (three threads, constant memory).
    let store = Blockstore::open(&opts.store).map_err(|source| Error::Ipfs {
        during: "opening the block store",
        source: Box::new(source.into()),
    })?;
    let (pipe, chunks) = std::sync::mpsc::sync_channel::<Chunk>(PIPE_DEPTH);
    let imported_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let importer = {
        let imported_bytes = std::sync::Arc::clone(&imported_bytes);
        std::thread::Builder::new()
            .name("bundle-import".into())
            .spawn(move || {
                store
                    .import(
                        PipeReader::new(chunks),
                        &ImportOptions::profile(Profile::KuboV1),
                        &mut |n| imported_bytes.store(n, Ordering::Relaxed),
                    )
                    .map_err(Box::new)
            })
            .map_err(|e| Error::Ipfs {
                during: "starting the import",
                source: Box::new(otaledger_ipfs::Error::Io(e)),
            })?
    };
    let sealed = write_atomic_with(&bundle_path, |out| {
        let mut tee = PipeWriter::new(out, pipe);
        let sealed = seal(&params, &spec, reader, image_len, &mut tee, &mut OsRng)?;
        tee.finish()
            .map_err(|source| otaledger_core::Error::Stream {
                during: "writing the bundle",
                source,
            })?;
        Ok(sealed)
    });
    // The importer's tail (the store's last blocks and fsyncs), as progress.
    let bundle_len = sealed.as_ref().map_or(0, |s| s.bundle_len);
    while !importer.is_finished() {
        progress(
            Stage::Importing,
            imported_bytes.load(Ordering::Relaxed),
            bundle_len,
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let imported = match importer.join() {
        Ok(imported) => imported,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let (sealed, imported) = match (sealed, imported) {
        (Ok(sealed), Ok(imported)) => (sealed, imported),
        // Sealing failed: the importer saw only its input end early, and sealing's error
        // says why.
        (Err(e), Ok(_)) => return Err(e.into()),
        (Err(e), Err(import))
            if matches!(*import, otaledger_ipfs::Error::Import(ImportError::Read(_))) =>
        {
            return Err(e.into());
        }
        // The import failed (the store's disk full, say): that is what stopped the sealing,
        // if it stopped.
        (_, Err(source)) => {
            return Err(Error::Ipfs {
                during: "importing the bundle",
                source,
            });
        }
    };
    progress(Stage::Importing, bundle_len, bundle_len);

    let manifest = ManifestBuilder::new(&sealed, imported.root.to_bytes())
        .price(opts.price)
        .payment_token(opts.token)
        .expiry(opts.expiry)
        .metadata_hash(opts.metadata_hash)
        .build();
    let file = ManifestFile::new(&sealed, manifest);
    file.store(&manifest_path)?;
    Ok(Created {
        bundle: bundle_path,
        manifest: manifest_path,
        cid: imported.root.to_string(),
        release_id: file.release_id(),
        digest: file.digest(),
        policy: file.policy.clone(),
        bundle_size: sealed.bundle_len,
        image_size: image_len,
        image_sha256: sealed.image_sha256,
        bundle_sha256: sealed.bundle_sha256,
    })
}

/// What `release sign` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    /// The signature file.
    pub signature_file: PathBuf,
    /// Who signed.
    pub signer: Address,
    /// The release id.
    pub release_id: B256,
    /// The digest signed.
    pub digest: B256,
}

/// Signs `manifest` with `key` (offline) into `out`, default
/// `<manifest dir>/<signer>.sig.json`. With `bundle`, first checks that the
/// bundle file is the one the manifest names and was sealed for its release
/// and policy (`ManifestFile::check_bundle`): the manifest alone cannot show
/// the policy the bundle was really sealed under.
pub fn sign(
    manifest: &Path,
    key: &alloy::signers::local::PrivateKeySigner,
    out: Option<PathBuf>,
    bundle: Option<&Path>,
) -> Result<Signed> {
    let file = ManifestFile::load(manifest)?;
    if let Some(bundle) = bundle {
        file.check_bundle(bundle)?;
    }
    let signature = file.sign(key)?;
    let out = out.unwrap_or_else(|| {
        manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}.sig.json", key.address()))
    });
    signature.store(&out)?;
    Ok(Signed {
        signature_file: out,
        signer: signature.signer,
        release_id: signature.release_id,
        digest: signature.digest,
    })
}

/// What `release publish` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The release id.
    pub release_id: B256,
    /// Model and version.
    pub model_id: u32,
    /// The version.
    pub version: u64,
    /// The signers whose signatures were used, ascending.
    pub signers: Vec<Address>,
    /// The transaction.
    #[serde(flatten)]
    pub mined: Mined,
}

/// Publishes `manifest` with the signature files `signatures` (any order),
/// sent by `sender` (anyone may submit).
pub async fn publish(
    chain: &Chain,
    sender: &alloy::signers::local::PrivateKeySigner,
    manifest: &Path,
    signatures: &[PathBuf],
) -> Result<Published> {
    let file = ManifestFile::load(manifest)?;
    if file.chain_id != chain.chain_id() || file.registry != chain.registry() {
        return Err(Error::Input {
            field: "--manifest",
            reason: format!(
                "the manifest is for chain {} registry {}, the node is chain {} registry {}",
                file.chain_id,
                file.registry,
                chain.chain_id(),
                chain.registry()
            ),
        });
    }
    let sigs = signatures
        .iter()
        .map(|p| SignatureFile::load(p))
        .collect::<otaledger_core::Result<Vec<_>>>()?;
    let provider = chain.signer(sender)?;
    let registry = UpdateRegistry::new(chain.registry(), &provider);
    let model = registry
        .model(file.manifest.modelId)
        .call()
        .await
        .map_err(|e| crate::chain::contract_error("reading the model", e))?;
    if model.manufacturerId == 0 {
        return Err(Error::NotFound {
            what: format!("model {}", file.manifest.modelId),
        });
    }
    let set = current_signer_set(chain, &provider, model.manufacturerId).await?;
    let approval = file.approval(&set, &sigs)?;
    let mut signers: Vec<Address> = sigs.iter().map(|s| s.signer).collect();
    signers.sort_unstable();
    signers.dedup();
    let (mined, _) = mined(
        "publishing the release",
        registry
            .publishRelease(file.manifest.clone(), approval)
            .send()
            .await,
    )
    .await?;
    Ok(Published {
        release_id: file.release_id(),
        model_id: file.manifest.modelId,
        version: file.manifest.version,
        signers,
        mined,
    })
}

/// A published release: its manifest (from `ReleasePublished`) and on-chain status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInfo {
    /// The release id.
    pub release_id: B256,
    /// Model.
    pub model_id: u32,
    /// Version.
    pub version: u64,
    /// Price per device.
    pub price: String,
    /// Payment token (zero: ETH).
    pub payment_token: Address,
    /// Bundle size in bytes.
    pub bundle_size: u64,
    /// The bundle's CID.
    pub bundle_cid: String,
    /// SHA-256 of the bundle.
    pub bundle_sha256: B256,
    /// SHA-256 of the image.
    pub image_sha256: B256,
    /// The policy id.
    pub policy_id: B256,
    /// Expiry (unix time).
    pub expiry: u64,
    /// When it was published (unix time).
    pub published_at: u64,
    /// When it was revoked (unix time), if it was.
    pub revoked_at: Option<u64>,
}

/// Reads a published release.
pub async fn show(
    chain: &Chain,
    provider: &alloy::providers::DynProvider,
    release_id: B256,
) -> Result<ReleaseInfo> {
    let m = crate::market::published_manifest(chain, provider, release_id).await?;
    let status = UpdateRegistry::new(chain.registry(), provider)
        .release(release_id)
        .call()
        .await
        .map_err(|e| crate::chain::contract_error("reading the release", e))?;
    let cid = otaledger_ipfs::Cid::try_from(m.bundleCid.as_ref())
        .map(|c| c.to_string())
        .unwrap_or_else(|_| m.bundleCid.to_string());
    let revoked_at: u64 = status.revokedAt.to();
    Ok(ReleaseInfo {
        release_id,
        model_id: m.modelId,
        version: m.version,
        price: m.price.to_string(),
        payment_token: m.paymentToken,
        bundle_size: m.bundleSize,
        bundle_cid: cid,
        bundle_sha256: m.bundleSha256,
        image_sha256: m.imageSha256,
        policy_id: m.policyId,
        expiry: m.expiry,
        published_at: status.publishedAt.to(),
        revoked_at: (revoked_at != 0).then_some(revoked_at),
    })
}

/// The releases of a model, ascending by version, from its `ReleasePublished`
/// events (the model id is an indexed topic) with each one's on-chain status.
pub async fn list(
    chain: &Chain,
    provider: &alloy::providers::DynProvider,
    model_id: u32,
) -> Result<Vec<ReleaseInfo>> {
    use alloy::{providers::Provider, rpc::types::Filter, sol_types::SolEvent};
    use otaledger_core::bindings::registry::UpdateRegistry::ReleasePublished;
    let filter = Filter::new()
        .address(chain.registry())
        .from_block(chain.deployment.deployment_block)
        .event_signature(ReleasePublished::SIGNATURE_HASH)
        .topic2(B256::left_padding_from(&model_id.to_be_bytes()));
    let logs = provider.get_logs(&filter).await.map_err(|e| Error::Rpc {
        during: format!("listing the releases of model {model_id}"),
        reason: e.to_string(),
    })?;
    let mut ids: Vec<(u64, B256)> = logs
        .iter()
        .filter_map(|l| l.log_decode::<ReleasePublished>().ok())
        .map(|l| (l.inner.data.version, l.inner.data.releaseId))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        out.push(show(chain, provider, id).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;

    /// Review of issue 13: `release sign --bundle` checks the bundle before signing; a bundle
    /// sealed under another policy (here `"model:7"`, which any device of the model satisfies)
    /// than the manifest shows is refused and no signature is written.
    #[test]
    fn sign_with_bundle_refuses_a_bundle_the_manifest_does_not_describe() {
        let (params, _) = otaledger_cpabe::setup(&mut OsRng);
        let target = ReleaseTarget {
            chain_id: 31337,
            registry: Address::repeat_byte(0x5a),
            model_id: 7,
            version: 42,
        };
        let dir = tempfile::tempdir().unwrap();
        let image = vec![1u8; 500];
        let seal_to = |policy: &otaledger_cpabe::Policy, name: &str| {
            let path = dir.path().join(name);
            let mut bytes = Vec::new();
            let sealed = seal(
                &params,
                &BundleSpec {
                    target,
                    policy,
                    options: SealOptions::default(),
                },
                &image[..],
                image.len() as u64,
                &mut bytes,
                &mut OsRng,
            )
            .unwrap();
            std::fs::write(&path, &bytes).unwrap();
            (sealed, path)
        };
        let (sealed, honest) = seal_to(&default_policy(7, 42), "honest.bin");
        let (_, weak) = seal_to(&parse_policy("\"model:7\"").unwrap(), "weak.bin");
        let manifest = ManifestFile::new(
            &sealed,
            ManifestBuilder::new(&sealed, vec![1, 0x55]).build(),
        );
        let manifest_path = dir.path().join("manifest.json");
        manifest.store(&manifest_path).unwrap();
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(3)).unwrap();
        let refused = dir.path().join("refused.sig.json");
        let err = sign(&manifest_path, &key, Some(refused.clone()), Some(&weak)).unwrap_err();
        assert!(
            err.to_string().contains("does not match the manifest"),
            "{err}"
        );
        assert!(!refused.exists());
        let signed = dir.path().join("signed.sig.json");
        sign(&manifest_path, &key, Some(signed.clone()), Some(&honest)).unwrap();
        assert!(signed.exists());
    }

    /// A `release create` setup in `dir`: parameters on disk and options for `image`.
    fn create_setup(dir: &Path, image: PathBuf) -> CreateOptions {
        let (params, _) = otaledger_cpabe::setup(&mut OsRng);
        let params_path = dir.join("params.cpabe");
        std::fs::write(&params_path, params.to_bytes()).unwrap();
        CreateOptions {
            target: ReleaseTarget {
                chain_id: 31337,
                registry: Address::repeat_byte(0x5a),
                model_id: 7,
                version: 42,
            },
            image,
            policy: None,
            price: 0,
            token: Address::ZERO,
            expiry: u64::MAX,
            metadata_hash: B256::ZERO,
            params: params_path,
            out_dir: dir.join("release"),
            store: dir.join("store"),
            segment_size: 65_536,
        }
    }

    /// The bundle is imported while it is sealed: the CID and blocks are those of importing
    /// the finished bundle file afterwards (`ipfs add`), for a bundle of many blocks and pipe
    /// chunks, and progress ends at the bundle's length.
    #[test]
    fn create_imports_while_sealing_what_ipfs_add_imports_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image.bin");
        let bytes: Vec<u8> = (0..3_300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        std::fs::write(&image, &bytes).unwrap();
        let opts = create_setup(dir.path(), image);
        let mut last = (None, 0, 0);
        let created = create(&opts, &mut |stage, done, total| {
            last = (Some(stage), done, total)
        })
        .unwrap();
        assert_eq!(
            last,
            (
                Some(Stage::Importing),
                created.bundle_size,
                created.bundle_size
            )
        );

        let again = Blockstore::open(dir.path().join("again")).unwrap();
        let afterwards = otaledger_ipfs::import_path(
            &created.bundle,
            &ImportOptions::profile(Profile::KuboV1),
            &mut &again,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(created.cid, afterwards.root.to_string());
        assert!(afterwards.blocks > 12, "{afterwards:?}");
        let keys = |store: &Blockstore| {
            let mut keys: Vec<_> = store.iter().collect::<std::result::Result<_, _>>().unwrap();
            keys.sort();
            keys
        };
        assert_eq!(keys(&Blockstore::open(&opts.store).unwrap()), keys(&again));
    }

    /// A block store that cannot take the blocks (every shard directory's name taken by a
    /// file): `release create` fails naming the import, and leaves neither bundle nor manifest.
    #[test]
    fn create_with_a_store_that_cannot_be_written_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image.bin");
        std::fs::write(&image, vec![9u8; 1_500_000]).unwrap();
        let opts = create_setup(dir.path(), image);
        let blocks = opts.store.join("blocks");
        std::fs::create_dir_all(&blocks).unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        for a in alphabet.chars() {
            for b in alphabet.chars() {
                std::fs::write(blocks.join(format!("{a}{b}")), b"").unwrap();
            }
        }
        let err = create(&opts, &mut |_, _, _| {}).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Ipfs {
                    during: "importing the bundle",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!opts.out_dir.join("bundle.bin").exists());
        assert!(!opts.out_dir.join("manifest.json").exists());
    }

    /// Sealing that fails (an image longer than its length said when it was opened: here a
    /// FIFO, whose length reads 0) reports sealing's error, not the importer's broken pipe,
    /// and leaves neither bundle nor manifest.
    #[cfg(unix)]
    #[test]
    fn create_reports_sealings_error_when_sealing_stops_the_import() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("image.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // The reader may stop early: a broken pipe here is expected.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&fifo)
                    .and_then(|mut f| f.write_all(&[5u8; 200_000]));
            })
        };
        let opts = create_setup(dir.path(), fifo);
        let err = create(&opts, &mut |_, _, _| {}).unwrap_err();
        writer.join().unwrap();
        assert!(err.to_string().contains("declared"), "{err}");
        assert!(!matches!(err, Error::Ipfs { .. }), "{err}");
        assert!(!opts.out_dir.join("bundle.bin").exists());
        assert!(!opts.out_dir.join("manifest.json").exists());
    }
}
