//! Content addressing for OTA Ledger: under construction.
#![cfg_attr(not(feature = "std"), no_std)]
