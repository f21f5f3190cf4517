//! Shared protocol for OTA Ledger: contract bindings and protocol types.
