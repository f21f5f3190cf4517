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
        let password = password(
            PasswordFrom {
                file: self.password_file.as_deref(),
                value: self.password.as_deref(),
                flag: "--password-file",
                env: "ETH_PASSWORD",
                what: &format!("the keystore {}", path.display()),
            },
            false,
        )?;
        decrypt_keystore(path, &password)
    }
}

/// The places a password is looked for, in Foundry's order: a file, else a value from the
/// environment, else a no-echo prompt on the terminal.
#[derive(Debug, Clone, Copy)]
pub struct PasswordFrom<'a> {
    /// The file given on the command line.
    pub file: Option<&'a Path>,
    /// The value from the environment.
    pub value: Option<&'a str>,
    /// The option naming the file (for the error when none of the three is there).
    pub flag: &'static str,
    /// The environment variable holding the value (same).
    pub env: &'static str,
    /// What the password unlocks, for the prompt and the error ("the master key").
    pub what: &'a str,
}

/// The password from the first of `from`'s places that has one; `confirm` asks twice on a
/// terminal (a new key's password). With none of them, the error names all three.
pub fn password(from: PasswordFrom<'_>, confirm: bool) -> Result<String> {
    if let Some(file) = from.file {
        return read_password_file(file);
    }
    if let Some(value) = from.value {
        return Ok(value.to_owned());
    }
    let prompt = if confirm {
        format!("Password for {}: ", from.what)
    } else {
        format!("Password of {}: ", from.what)
    };
    prompt_password(&prompt, confirm).map_err(|e| Error::Input {
        field: from.flag,
        reason: format!(
            "{e}; {} needs a password: give {}, set {} or run on a terminal",
            from.what, from.flag, from.env
        ),
    })
}

/// Largest password file read (a passphrase is a line, not a file's worth).
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// Reads a password file, dropping one trailing newline (`\n` or `\r\n`).
/// At most [`MAX_PASSWORD_FILE`] bytes are read (a FIFO such as `<(pass show key)` works).
pub fn read_password_file(path: &Path) -> Result<String> {
    let bytes =
        otaledger_core::fsutil::read_capped(path, MAX_PASSWORD_FILE).map_err(Error::io(path))?;
    let mut text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Input {
            field: "password file",
            reason: format!("{} is not UTF-8 text", path.display()),
        })?
        .to_owned();
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
