//! Step 6, verified download: the bundle by the manifest's `bundleCid`, from the configured
//! gateways, with `otaledger-ipfs`'s verified fetch (every block checked against the CID that
//! named it before its bytes are handed on; bytes beyond the manifest's `bundleSize` refused; a
//! minimum rate; the next gateway on any failure, resuming from the verified position), and the
//! whole bundle's SHA-256 against the manifest's `bundleSha256`.
//!
//! The updater runs it as one stream with step 7 ([`super::stream_into_slot`]); [`download`]
//! is the same step into a file.
//!
//! Attacks stopped: a malicious mirror (tampered block, wrong block, truncated CAR), endless
//! data, slow retrieval ([`Error::Download`], whose source lists every gateway attempt); a
//! manifest claiming a bundle larger than the compiled-in ceiling ([`Error::BundleTooLarge`]); a
//! bundle other than the approved one ([`Error::BundleHash`]).

use std::{io::Read, path::Path};

use alloy_primitives::B256;
use otaledger_ipfs::{Cid, FetchOptions};
use sha2::{Digest, Sha256};

use crate::{Error, Manifest, Result};

/// Largest bundle a device downloads, whatever a manifest says: 4 GiB.
pub const MAX_BUNDLE_SIZE: u64 = 4 << 30;

/// SHA-256 of a file, read in 1 MiB pieces.
pub fn file_sha256(path: &Path) -> std::io::Result<B256> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..n]);
    }
    Ok(B256::from(<[u8; 32]>::from(hash.finalize())))
}

/// The manifest's bundle as the fetch asks for it: its CID, its size within
/// [`MAX_BUNDLE_SIZE`] (checked before any request).
pub(crate) fn bundle_cid(manifest: &Manifest) -> Result<Cid> {
    if manifest.bundleSize > MAX_BUNDLE_SIZE {
        return Err(Error::BundleTooLarge {
            size: manifest.bundleSize,
            max: MAX_BUNDLE_SIZE,
        });
    }
    Cid::try_from(manifest.bundleCid.as_ref()).map_err(|e| Error::BundleCid {
        reason: e.to_string(),
    })
}

/// The bundle's SHA-256 must be the manifest's `bundleSha256`.
pub(crate) fn check_bundle_hash(manifest: &Manifest, actual: B256) -> Result<()> {
    if actual != manifest.bundleSha256 {
        return Err(Error::BundleHash {
            expected: manifest.bundleSha256,
            actual,
        });
    }
    Ok(())
}

/// Step 6 alone: fetches `manifest`'s bundle from `gateways` into the file `out` (which appears
/// only if every check passed; a bundle failing the hash check is removed). The updater does
/// not use it: it streams the verified bytes straight into step 7
/// ([`super::stream_into_slot`]); this is for a caller that wants the bundle as a file.
pub async fn download(
    manifest: &Manifest,
    gateways: &[url::Url],
    opts: &FetchOptions,
    out: &Path,
) -> Result<()> {
    let cid = bundle_cid(manifest)?;
    // Not made durable: the updater decrypts it at once and removes it, and removes any bundle
    // file a power cut left at its next start, so an fsync of the whole bundle buys nothing.
    let opts = FetchOptions {
        durable: false,
        ..opts.clone()
    };
    let report = otaledger_ipfs::fetch(cid, manifest.bundleSize, gateways, out, &opts)
        .await
        .map_err(|e| Error::Download {
            source: Box::new(e),
        })?;
    for failure in &report.failures {
        tracing::warn!(%failure, "step 6: gateway attempt failed, resumed at the next one");
    }
    // The file's SHA-256 as the fetch wrote it (no second read of the file).
    if let Err(e) = check_bundle_hash(manifest, B256::from(report.sha256)) {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    tracing::info!(
        size = manifest.bundleSize,
        gateway = %report.completed_by.0,
        "step 6: bundle downloaded, every block and the sha256 verified"
    );
    Ok(())
}
