//! Review of `device.toml` (issue 14, second engineer): the key files it names are files *in
//! the device directory*; a name that climbs out of it (`../../x`), an absolute path or a
//! nested path is refused when the file is read, so a device directory cannot make the client
//! read (or later write) files elsewhere.

use std::path::Path;

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use otaledger_core::{
    device_file::{
        DEVICE_FORMAT, DeviceConfig, IndexerConfig, IpfsConfig, KeyServiceConfig, ReportsConfig,
        RpcConfig,
    },
    key_delivery::identity_public_key,
};

fn config(identity: &str, cpabe: &str) -> DeviceConfig {
    let key = PrivateKeySigner::random();
    DeviceConfig {
        format: DEVICE_FORMAT.into(),
        chain_id: 31337,
        registry: Address::repeat_byte(1),
        market: Address::repeat_byte(2),
        manufacturer_id: 1,
        model_id: 1,
        batch_id: 1,
        device_index: 1,
        position: 0,
        address: key.address(),
        public_key: identity_public_key(&key).into(),
        identity_key_file: identity.into(),
        cpabe_key_file: cpabe.into(),
        attributes: vec!["model:1".into()],
        merkle_proof: Vec::new(),
        rpc: RpcConfig {
            urls: vec!["http://127.0.0.1:8545".into()],
        },
        ipfs: IpfsConfig {
            gateways: vec!["http://127.0.0.1:8080".into()],
        },
        key_service: KeyServiceConfig {
            address: Address::repeat_byte(3),
            urls: vec!["http://127.0.0.1:8547".into()],
        },
        reports: ReportsConfig::default(),
        indexer: IndexerConfig::default(),
    }
}

#[test]
fn review_key_file_names_outside_the_device_directory_are_refused() {
    let path = Path::new("device.toml");
    let good = config("identity.key", "cpabe.key");
    assert_eq!(
        DeviceConfig::parse(&good.to_toml().unwrap(), path).unwrap(),
        good
    );
    for bad in [
        "../../x",
        "..",
        "/etc/shadow",
        "keys/identity.key",
        "",
        ".",
        "a\\..\\b",
    ] {
        for (identity, cpabe) in [(bad, "cpabe.key"), ("identity.key", bad)] {
            let text = config(identity, cpabe).to_toml().unwrap();
            let err = DeviceConfig::parse(&text, path).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("key_file")
                    && matches!(err, otaledger_core::Error::DeviceFile { .. }),
                "{bad:?}: {message}"
            );
        }
    }
}
