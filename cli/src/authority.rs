//! `authority init`: the manufacturer's CP-ABE authority.
//!
//! Writes into the authority directory:
//! - `params.cpabe`: the public parameters (`otaledger-cpabe` encoding), also
//!   imported into the IPFS block store (their CID goes on chain with
//!   `setParamsCid`);
//! - `master.json`: the master key, encrypted with a password — never printed,
//!   never logged. Format `otaledger-cpabe-master/1`:
//!
//! ```json
//! { "format": "otaledger-cpabe-master/1",
//!   "kdf": { "name": "scrypt", "logN": 17, "r": 8, "p": 1, "salt": "0x<32 bytes>" },
//!   "cipher": { "name": "xchacha20poly1305", "nonce": "0x<24 bytes>" },
//!   "ciphertext": "0x<master key encoding ‖ 16-byte tag>" }
//! ```
//!
//! The key is scrypt(password, salt) (32 bytes); the associated data is
//! `format ‖ logN ‖ u32be(r) ‖ u32be(p) ‖ salt`, so the parameters cannot be
//! swapped for weaker ones. Reading bounds `logN ≤ 20`, `r ≤ 16`, `p ≤ 4`
//! before running scrypt.

use std::path::{Path, PathBuf};

use alloy::primitives::Bytes;
use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use otaledger_core::fsutil::write_atomic;
use otaledger_cpabe::{MasterKey, PublicKey, rand_core::OsRng, setup};
use otaledger_ipfs::{Blockstore, ImportOptions, Profile, import_path};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The `format` tag of the master-key file.
pub const MASTER_FORMAT: &str = "otaledger-cpabe-master/1";
/// scrypt cost used when writing (2^17: about half a second optimised).
pub const DEFAULT_LOG_N: u8 = 17;
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 16;
const MAX_P: u32 = 4;

/// The public parameters' file name in the authority directory.
pub const PARAMS_FILE: &str = "params.cpabe";
/// The master key's file name in the authority directory.
pub const MASTER_FILE: &str = "master.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kdf {
    name: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: Bytes,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cipher {
    name: String,
    nonce: Bytes,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MasterFile {
    format: String,
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: Bytes,
}

fn associated_data(kdf: &Kdf) -> Vec<u8> {
    let mut ad = MASTER_FORMAT.as_bytes().to_vec();
    ad.push(kdf.log_n);
    ad.extend_from_slice(&kdf.r.to_be_bytes());
    ad.extend_from_slice(&kdf.p.to_be_bytes());
    ad.extend_from_slice(&kdf.salt);
    ad
}

fn derive(password: &str, kdf: &Kdf, path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let bad = |reason: String| Error::MasterKeyFile {
        path: path.to_owned(),
        reason,
    };
    if kdf.name != "scrypt" {
        return Err(bad(format!("unknown kdf {:?}", kdf.name)));
    }
    if kdf.log_n == 0
        || kdf.log_n > MAX_LOG_N
        || kdf.r == 0
        || kdf.r > MAX_R
        || kdf.p == 0
        || kdf.p > MAX_P
    {
        return Err(bad(format!(
            "scrypt parameters logN {} r {} p {} are outside logN 1..={MAX_LOG_N}, r 1..={MAX_R}, p 1..={MAX_P}",
            kdf.log_n, kdf.r, kdf.p
        )));
    }
    let params = scrypt::Params::new(kdf.log_n, kdf.r, kdf.p)
        .map_err(|e| bad(format!("scrypt parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), &kdf.salt, &params, key.as_mut_slice())
        .map_err(|e| bad(format!("scrypt: {e}")))?;
    Ok(key)
}

/// Encrypts `master` with `password` into the `master.json` text.
pub fn encrypt_master(
    master: &MasterKey,
    password: &str,
    log_n: u8,
    path: &Path,
) -> Result<String> {
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let kdf = Kdf {
        name: "scrypt".into(),
        log_n,
        r: 8,
        p: 1,
        salt: Bytes::copy_from_slice(&salt),
    };
    let key = derive(password, &kdf, path)?;
    let mut buf = master.to_bytes();
    XChaCha20Poly1305::new(&(*key).into())
        .encrypt_in_place(&nonce.into(), &associated_data(&kdf), &mut buf)
        .map_err(|_| Error::MasterKeyFile {
            path: path.to_owned(),
            reason: "encryption failed".into(),
        })?;
    let file = MasterFile {
        format: MASTER_FORMAT.into(),
        kdf,
        cipher: Cipher {
            name: "xchacha20poly1305".into(),
            nonce: Bytes::copy_from_slice(&nonce),
        },
        ciphertext: Bytes::from(buf),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// Reads and decrypts a master-key file; a wrong password is named as such.
pub fn load_master(path: &Path, password: &str) -> Result<MasterKey> {
    let bad = |reason: String| Error::MasterKeyFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let file: MasterFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.format != MASTER_FORMAT {
        return Err(bad(format!(
            "format {:?} is not {MASTER_FORMAT:?}",
            file.format
        )));
    }
    if file.cipher.name != "xchacha20poly1305" {
        return Err(bad(format!("unknown cipher {:?}", file.cipher.name)));
    }
    let nonce: [u8; 24] = file.cipher.nonce.as_ref().try_into().map_err(|_| {
        bad(format!(
            "nonce of {} bytes, expected 24",
            file.cipher.nonce.len()
        ))
    })?;
    let key = derive(password, &file.kdf, path)?;
    let mut buf = Zeroizing::new(file.ciphertext.to_vec());
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt_in_place(&nonce.into(), &associated_data(&file.kdf), &mut *buf)
        .map_err(|_| bad("wrong password (or the file was altered)".into()))?;
    MasterKey::from_bytes(&buf).map_err(|e| bad(format!("not a master key: {e}")))
}

/// What `authority init` made.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Initialized {
    /// The public parameters file.
    pub params: PathBuf,
    /// The encrypted master key file.
    pub master: PathBuf,
    /// The parameters' CID in the block store (`kubo-v1`).
    pub params_cid: String,
}

/// Creates a new authority in `dir` (refusing to overwrite one), imports the
/// public parameters into the block store at `store`.
pub fn init(dir: &Path, password: &str, store: &Path, log_n: u8) -> Result<Initialized> {
    if password.is_empty() {
        return Err(Error::Input {
            field: "--master-password-file",
            reason: "the master key password is empty".into(),
        });
    }
    let params_path = dir.join(PARAMS_FILE);
    let master_path = dir.join(MASTER_FILE);
    if master_path.exists() || params_path.exists() {
        return Err(Error::Input {
            field: "--dir",
            reason: format!(
                "{} already holds an authority: refusing to overwrite its master key",
                dir.display()
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let (params, master): (PublicKey, MasterKey) = setup(&mut OsRng);
    let text = Zeroizing::new(encrypt_master(&master, password, log_n, &master_path)?);
    write_atomic(&master_path, text.as_bytes())?;
    restrict(&master_path)?;
    write_atomic(&params_path, &params.to_bytes())?;
    let store = Blockstore::open(store).map_err(|source| Error::Ipfs {
        during: "opening the block store",
        source: Box::new(source.into()),
    })?;
    let imported = import_path(
        &params_path,
        &ImportOptions::profile(Profile::KuboV1),
        &mut &store,
        &mut |_| {},
    )
    .map_err(|source| Error::Ipfs {
        during: "importing the parameters",
        source: Box::new(source),
    })?;
    Ok(Initialized {
        params: params_path,
        master: master_path,
        params_cid: imported.root.to_string(),
    })
}

/// Owner-only permissions on a secret file.
fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_file_round_trips_and_refuses_wrong_passwords_and_weakened_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.json");
        let (_, master) = setup(&mut OsRng);
        let text = encrypt_master(&master, "correct horse", 10, &path).unwrap();
        assert!(!text.contains(&alloy::hex::encode(master.to_bytes())));
        std::fs::write(&path, &text).unwrap();
        let back = load_master(&path, "correct horse").unwrap();
        assert_eq!(back.to_bytes(), master.to_bytes());
        let err = load_master(&path, "wrong").unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
        // Lowering the cost in the file breaks the associated data.
        std::fs::write(&path, text.replace("\"logN\": 10", "\"logN\": 9")).unwrap();
        assert!(load_master(&path, "correct horse").is_err());
        // An absurd cost is refused before running scrypt.
        std::fs::write(&path, text.replace("\"logN\": 10", "\"logN\": 40")).unwrap();
        let err = load_master(&path, "correct horse").unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn init_refuses_to_overwrite_an_authority() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("ipfs");
        let auth = dir.path().join("authority");
        let made = init(&auth, "pw", &store, 10).unwrap();
        assert!(made.params_cid.starts_with("bafk"));
        PublicKey::from_bytes(&std::fs::read(&made.params).unwrap()).unwrap();
        load_master(&made.master, "pw").unwrap();
        assert!(matches!(
            init(&auth, "pw", &store, 10),
            Err(Error::Input { field: "--dir", .. })
        ));
    }
}
