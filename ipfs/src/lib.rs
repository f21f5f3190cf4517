//! Content addressing for OTA Ledger: CIDs that every IPFS node agrees with.
//!
//! The crate has two layers:
//! - a `no_std` + `alloc` core (always built): CID and multihash handling, a strict dag-pb and
//!   UnixFS codec that accepts only the canonical encoding, and an incremental [`Verifier`] that
//!   checks a file's DAG block by block against its root CID under documented [`Limits`];
//! - with the `std` feature (on by default): an importer with Kubo-identical profiles
//!   (`import()`), a directory `Blockstore`, a streaming CAR v1 reader and writer (`car`) and
//!   the DAG traversal the trustless gateway and the CAR export use (`traverse`).
//!
//! Only sha2-256 multihashes and the dag-pb and raw codecs are supported: that is what Kubo and
//! the IPIP-499 profiles produce for files.
#![cfg_attr(not(feature = "std"), no_std)]
// Errors carry the CIDs involved (about 80 bytes each) by value so that the no_std verifier
// needs no allocation to report them; they are cold paths next to hashing a block.
#![allow(clippy::result_large_err)]

extern crate alloc;

mod block;
mod dagpb;
mod error;
mod limits;
mod proto;
mod unixfs;
mod verify;

#[cfg(feature = "std")]
mod blockstore;
#[cfg(feature = "std")]
pub mod car;
#[cfg(feature = "std")]
mod import;
#[cfg(feature = "std")]
pub mod traverse;

pub use cid::{self, Cid};
pub use multihash;

pub use block::{DAG_PB, RAW, SHA2_256, block_cid, check_block, sha256_multihash};
pub use dagpb::{PbLink, PbNode, decode_dag_pb, encode_dag_pb};
pub use error::{DecodeError, Error, Result, VerifyError};
pub use limits::{Limits, MAX_BLOCK_SIZE, MAX_DEPTH, MAX_LINKS_PER_NODE, MAX_TOTAL_SIZE};
pub use unixfs::{DataType, UnixFsData, decode_unixfs, encode_unixfs_file};
pub use verify::{MAX_REMEMBERED_BLOCKS, Pushed, Repeat, Verifier};

#[cfg(feature = "std")]
pub use blockstore::{BlockWriter, Blockstore};
#[cfg(feature = "std")]
pub use error::{BlockstoreError, CarError, ImportError};
#[cfg(feature = "std")]
pub use import::{
    BlockSink, ImportOptions, Imported, MAX_CHUNK_SIZE, NullSink, Profile, import, import_path,
    import_with_threads, parse_chunker,
};

// --- ipfs-net: trustless gateway server (`server`), verified fetch and Kubo RPC (`client`) ---
#[cfg(feature = "client")]
pub mod fetch;
#[cfg(feature = "server")]
pub mod gateway;
#[cfg(feature = "client")]
pub mod http;
#[cfg(feature = "client")]
mod kubo;

#[cfg(feature = "client")]
pub use fetch::{FetchError, FetchOptions, FetchReport, SinkReport, fetch, fetch_into, probe_size};
#[cfg(feature = "server")]
pub use gateway::{GatewayConfig, router, serve};
#[cfg(feature = "client")]
pub use kubo::{
    KUBO_CONNECT_TIMEOUT, KUBO_MAX_BLOCK_SIZE, KUBO_MAX_JSON_SIZE, KUBO_MAX_STREAM_SIZE,
    KuboAddParams, KuboAdded, KuboClient, KuboError, KuboResult, KuboVersion,
};
