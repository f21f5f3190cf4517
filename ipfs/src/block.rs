//! Block-level CID helpers: codes, hashing and the check of a block against its CID.

use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::{Cid, error::VerifyError};

/// Multicodec code of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// Multicodec code of raw blocks.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// The sha2-256 multihash of `data`.
pub fn sha256_multihash(data: &[u8]) -> Multihash<64> {
    let digest = Sha256::digest(data);
    // A 32-byte digest always fits the 64-byte multihash.
    Multihash::wrap(SHA2_256, &digest).unwrap_or_default()
}

/// The CID of `data` with the given codec and CID version (a CIDv0 is always dag-pb).
pub fn block_cid(version: cid::Version, codec: u64, data: &[u8]) -> Cid {
    let mh = sha256_multihash(data);
    match version {
        cid::Version::V0 if codec == DAG_PB => {
            Cid::new_v0(mh).unwrap_or_else(|_| Cid::new_v1(codec, mh))
        }
        _ => Cid::new_v1(codec, mh),
    }
}

/// Checks that the CID uses a supported codec and hash.
pub(crate) fn check_cid_kind(cid: &Cid) -> Result<(), VerifyError> {
    let codec = cid.codec();
    if codec != DAG_PB && codec != RAW {
        return Err(VerifyError::UnsupportedCodec { cid: *cid, codec });
    }
    check_hash_kind(cid)
}

/// Checks that the CID's multihash is sha2-256 with a full 32-byte digest.
pub(crate) fn check_hash_kind(cid: &Cid) -> Result<(), VerifyError> {
    let mh = cid.hash();
    if mh.code() != SHA2_256 || mh.size() != 32 {
        return Err(VerifyError::UnsupportedHash {
            cid: *cid,
            code: mh.code(),
            size: mh.size(),
        });
    }
    Ok(())
}

/// Checks that `data` hashes to `cid`'s sha2-256 multihash (any codec).
pub fn check_block(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
    check_hash_kind(cid)?;
    let digest = Sha256::digest(data);
    if cid.hash().digest() != digest.as_slice() {
        return Err(VerifyError::HashMismatch { cid: *cid });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn empty_raw_block_cid() {
        let cid = block_cid(cid::Version::V1, RAW, b"");
        assert_eq!(
            cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        check_block(&cid, b"").unwrap();
        assert_eq!(
            check_block(&cid, b"x"),
            Err(VerifyError::HashMismatch { cid })
        );
    }

    #[test]
    fn v0_only_for_dag_pb() {
        assert_eq!(
            block_cid(cid::Version::V0, RAW, b"a").version(),
            cid::Version::V1
        );
        assert_eq!(
            block_cid(cid::Version::V0, DAG_PB, b"a").version(),
            cid::Version::V0
        );
    }

    #[test]
    fn unsupported_hash_rejected() {
        let mh = Multihash::<64>::wrap(0x00, b"inline").unwrap();
        let cid = Cid::new_v1(RAW, mh);
        assert!(matches!(
            check_block(&cid, b"inline"),
            Err(VerifyError::UnsupportedHash { code: 0, .. })
        ));
    }
}
