//! Step 6, verified download: the bundle by the manifest's `bundleCid`, from the configured
//! gateways, with `otaledger-ipfs`'s verified fetch (every block checked against the CID that
//! named it before its bytes are written; bytes beyond the manifest's `bundleSize` refused; a
//! minimum rate; the next gateway on any failure, resuming from the verified position), then the
//! whole file's SHA-256 against the manifest's `bundleSha256`.
//!
//! Attacks stopped: a malicious mirror (tampered block, wrong block, truncated CAR), endless
//! data, slow retrieval ([`Error::Download`], whose source lists every gateway attempt); a
//! manifest claiming a bundle larger than the compiled-in ceiling ([`Error::BundleTooLarge`]); a
//! bundle other than the approved one ([`Error::BundleHash`]). The file appears at its path only
//! when every check passed.

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

/// Step 6: fetches `manifest`'s bundle from `gateways` into `out` (which appears only if every
/// check passed; a bundle failing the hash check is removed).
pub async fn download(
    manifest: &Manifest,
    gateways: &[url::Url],
    opts: &FetchOptions,
    out: &Path,
) -> Result<()> {
    if manifest.bundleSize > MAX_BUNDLE_SIZE {
        return Err(Error::BundleTooLarge {
            size: manifest.bundleSize,
            max: MAX_BUNDLE_SIZE,
        });
    }
    let cid = Cid::try_from(manifest.bundleCid.as_ref()).map_err(|e| Error::BundleCid {
        reason: e.to_string(),
    })?;
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
    let actual = B256::from(report.sha256);
    if actual != manifest.bundleSha256 {
        let _ = std::fs::remove_file(out);
        return Err(Error::BundleHash {
            expected: manifest.bundleSha256,
            actual,
        });
    }
    tracing::info!(
        size = manifest.bundleSize,
        gateway = %report.completed_by.0,
        "step 6: bundle downloaded, every block and the sha256 verified"
    );
    Ok(())
}
