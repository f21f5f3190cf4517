//! `otaledger`: the OTA Ledger command-line tool.
fn main() {}
