//! Wallets as Foundry users expect them: a raw private key, or an encrypted
//! JSON keystore (Web3 Secret Storage v3, the format `cast wallet new` and
//! `cast wallet import` write) with its password in a file.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
};

use alloy::signers::local::PrivateKeySigner;

use crate::{Error, Result};

/// Where a command's key comes from.
#[derive(Debug, Clone, Default)]
pub struct WalletOptions {
    /// A raw private key (hex, with or without `0x`).
    pub private_key: Option<String>,
    /// An encrypted keystore file.
    pub keystore: Option<PathBuf>,
    /// A file holding the keystore's password (one trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// The keystore's password itself (from `ETH_PASSWORD`).
    pub password: Option<String>,
}

impl WalletOptions {
    /// Whether any wallet was given.
    pub fn is_given(&self) -> bool {
        self.private_key.is_some() || self.keystore.is_some()
    }

    /// The signer, or [`Error::NoWallet`].
    pub fn signer(&self) -> Result<PrivateKeySigner> {
        if let Some(key) = &self.private_key {
            return key.trim().parse().map_err(|_| Error::Input {
                field: "--private-key",
                reason: "not a 32-byte hex secp256k1 private key".into(),
            });
        }
        let Some(path) = &self.keystore else {
            return Err(Error::NoWallet);
        };
        let password = match (&self.password_file, &self.password) {
            (Some(file), _) => read_password_file(file)?,
            (None, Some(p)) => p.clone(),
            (None, None) => prompt_password(
                &format!("Password of the keystore {}: ", path.display()),
                false,
            )
            .map_err(|_| Error::Input {
                field: "--password-file",
                reason: format!(
                    "the keystore {} needs a password: give --password-file, set ETH_PASSWORD or run on a terminal",
                    path.display()
                ),
            })?,
        };
        decrypt_keystore(path, &password)
    }
}

/// Reads a password file, dropping one trailing newline (`\n` or `\r\n`).
pub fn read_password_file(path: &Path) -> Result<String> {
    let mut text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Asks for a password on the terminal without echoing it (as `cast wallet` does); with
/// `confirm`, asks twice and refuses a mismatch or an empty password. Fails with
/// [`Error::Input`] when standard input is not a terminal (a script must pass a file).
pub fn prompt_password(prompt: &str, confirm: bool) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Input {
            field: "password",
            reason: "no password given and standard input is not a terminal to ask on".into(),
        });
    }
    let read = |p: &str| {
        rpassword::prompt_password(p).map_err(|e| Error::Input {
            field: "password",
            reason: format!("reading it from the terminal: {e}"),
        })
    };
    let first = read(prompt)?;
    if confirm {
        if first.is_empty() {
            return Err(Error::Input {
                field: "password",
                reason: "an empty password would leave the file unprotected".into(),
            });
        }
        if read("Repeat it: ")? != first {
            return Err(Error::Input {
                field: "password",
                reason: "the two entries differ".into(),
            });
        }
    }
    Ok(first)
}

/// Decrypts a keystore file; a wrong password is named as such.
pub fn decrypt_keystore(path: &Path, password: &str) -> Result<PrivateKeySigner> {
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
        let text = e.to_string();
        let reason = if text.contains("Mac Mismatch") || text.to_lowercase().contains("mac") {
            "wrong password (the keystore's MAC does not match)".to_owned()
        } else {
            text
        };
        Error::Keystore {
            path: path.to_owned(),
            reason,
        }
    })
}
