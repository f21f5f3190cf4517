//! CP-ABE (FAME on BLS12-381) for OTA Ledger: under construction.
