//! Fuzzes every decoder (capsule, secret key, public key, master key, policy
//! in binary, text and JSON) and decapsulation of whatever capsule or key
//! decodes. Invariants: no panic; anything accepted re-encodes to the same
//! bytes (text: re-parses to the same canonical text).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otaledger_cpabe::{Capsule, MasterKey, Policy, PublicKey, SecretKey, decapsulate};

fn kat(name: &str) -> Vec<u8> {
    let text = match name {
        "sk" => include_str!("../../tests/data/sk.hex"),
        _ => include_str!("../../tests/data/capsule.hex"),
    };
    hex::decode(text.trim()).unwrap_or_default()
}

fn fixed() -> &'static (SecretKey, Capsule) {
    static F: OnceLock<(SecretKey, Capsule)> = OnceLock::new();
    F.get_or_init(|| {
        let sk = SecretKey::from_bytes(&kat("sk")).expect("committed KAT key decodes");
        let capsule = Capsule::from_bytes(&kat("capsule")).expect("committed KAT capsule decodes");
        (sk, capsule)
    })
}

fuzz_target!(|data: &[u8]| {
    let (sk, capsule) = fixed();
    if let Ok(c) = Capsule::from_bytes(data) {
        assert_eq!(c.to_bytes(), data);
        let _ = decapsulate(sk, &c, b"fuzz");
    }
    if let Ok(k) = SecretKey::from_bytes(data) {
        assert_eq!(k.to_bytes(), data);
        let _ = decapsulate(&k, capsule, b"fuzz");
    }
    if let Ok(p) = Policy::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
    }
    if let Ok(pk) = PublicKey::from_bytes(data) {
        assert_eq!(pk.to_bytes(), data);
    }
    if let Ok(msk) = MasterKey::from_bytes(data) {
        assert_eq!(msk.to_bytes(), data);
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(p) = Policy::parse(text) {
            let shown = p.to_string();
            assert_eq!(Policy::parse(&shown).map(|q| q.to_string()), Ok(shown));
        }
        if let Ok(p) = Policy::from_json(text) {
            assert_eq!(Policy::from_json(&p.to_json()), Ok(p));
        }
    }
});
