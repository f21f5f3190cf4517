//! Kubo RPC client: publish to a user's own Kubo node or IPFS Cluster proxy.
//!
//! Kubo's RPC API (`/api/v0/...`) only accepts `POST`. Its answers are parsed
//! strictly: exactly the fields Kubo's RPC reference documents (unknown fields
//! are an error, so a changed or impostor API is noticed rather than
//! misread), every CID is parsed, and a block from `block/get` is hashed
//! against the CID that was asked for: a Kubo node is trusted to store data,
//! not to return the right bytes.
//!
//! Errors Kubo reports come as `{"Message": .., "Code": .., "Type": "error"}`
//! (with a 4xx/5xx status, or as a line inside an NDJSON stream) and become
//! [`KuboError::Api`].

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use cid::Cid;
use serde::Deserialize;

use crate::import::{ImportOptions, Profile};

/// Largest block `block/get` accepts (the IPFS block size limit, 2 MiB).
pub const KUBO_MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;
/// Largest JSON answer read from Kubo (one NDJSON line, one JSON body, or an error body).
pub const KUBO_MAX_JSON_SIZE: usize = 64 * 1024;
/// Largest whole NDJSON answer of `add` (with `progress=false` Kubo sends one line per file).
pub const KUBO_MAX_STREAM_SIZE: u64 = 1024 * 1024;
/// Default time allowed to connect to the Kubo API.
pub const KUBO_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Kubo RPC call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KuboError {
    /// The API address is not a usable base URL.
    #[error("invalid kubo api url {url}: {reason}")]
    InvalidUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be sent or the answer not read (connection refused, reset, timeout).
    #[error("kubo {endpoint}: transport error: {source}")]
    Transport {
        /// The RPC endpoint, e.g. `/api/v0/add`.
        endpoint: &'static str,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// Kubo answered with its error object.
    #[error("kubo {endpoint} failed (http {status}, code {code}): {message}")]
    Api {
        /// The RPC endpoint.
        endpoint: &'static str,
        /// HTTP status (200 when the error came inside a stream).
        status: u16,
        /// Kubo's `Message`.
        message: String,
        /// Kubo's `Code`.
        code: i64,
    },
    /// A status other than 200 without Kubo's error object.
    #[error("kubo {endpoint}: unexpected http status {status}: {body}")]
    UnexpectedStatus {
        /// The RPC endpoint.
        endpoint: &'static str,
        /// HTTP status.
        status: u16,
        /// The start of the body, for the log.
        body: String,
    },
    /// The answer is not in the format Kubo's RPC reference documents.
    #[error("kubo {endpoint}: malformed answer: {reason}")]
    Malformed {
        /// The RPC endpoint.
        endpoint: &'static str,
        /// What did not match.
        reason: String,
    },
    /// An answer longer than its limit: a JSON body, an NDJSON line or an error body longer than
    /// [`KUBO_MAX_JSON_SIZE`], an NDJSON stream longer than [`KUBO_MAX_STREAM_SIZE`], or a
    /// `dag/export` longer than the caller's `max_bytes`. Counted as it streams; reading stops
    /// there (at most one network read past the limit).
    #[error("kubo {endpoint}: answer (http {status}) longer than {limit} bytes (read {read})")]
    AnswerTooLarge {
        /// The RPC endpoint.
        endpoint: &'static str,
        /// The answer's HTTP status.
        status: u16,
        /// The limit.
        limit: u64,
        /// Bytes read when the client stopped.
        read: u64,
    },
    /// `block/get` returned bytes that do not hash to the requested CID.
    #[error("kubo block/get returned a block that does not match {cid}")]
    BlockHashMismatch {
        /// The CID that was asked for.
        cid: Cid,
    },
    /// `block/get` returned more than [`KUBO_MAX_BLOCK_SIZE`] bytes (counted as it streams).
    #[error("kubo block/get returned more than {limit} bytes for {cid} (read {read})")]
    BlockTooLarge {
        /// The CID that was asked for.
        cid: Cid,
        /// The limit.
        limit: usize,
        /// Bytes read when the client stopped.
        read: u64,
    },
    /// The CID uses a hash function this client cannot check.
    #[error("cannot verify {cid}: unsupported multihash code {code:#x}")]
    UnsupportedHash {
        /// The CID.
        cid: Cid,
        /// Its multihash code.
        code: u64,
    },
    /// Reading the file to add or writing an export failed.
    #[error("kubo {endpoint}: i/o error on {path}: {source}")]
    Io {
        /// The RPC endpoint.
        endpoint: &'static str,
        /// The local file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`KuboError`].
pub type KuboResult<T> = std::result::Result<T, KuboError>;

/// What `/api/v0/add` reported for the added file (its last NDJSON object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuboAdded {
    /// The file's root CID as Kubo computed it.
    pub cid: Cid,
    /// The name Kubo echoed back (the multipart file name).
    pub name: String,
    /// Kubo's `Size`: the cumulative size of the DAG (file bytes plus node overhead).
    pub dag_size: u64,
}

/// `/api/v0/version`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KuboVersion {
    /// Kubo version, e.g. `0.38.1`.
    #[serde(rename = "Version")]
    pub version: String,
    /// Git commit Kubo was built from (may be empty).
    #[serde(rename = "Commit")]
    pub commit: String,
    /// Repository version.
    #[serde(rename = "Repo")]
    pub repo: String,
    /// OS/architecture, e.g. `amd64/linux`.
    #[serde(rename = "System")]
    pub system: String,
    /// Go version Kubo was built with.
    #[serde(rename = "Golang")]
    pub golang: String,
}

/// The `/api/v0/add` parameters that decide the CID (a profile, as Kubo's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KuboAddParams {
    /// `cid-version`.
    pub cid_version: u8,
    /// `raw-leaves`.
    pub raw_leaves: bool,
    /// `chunker=size-N`.
    pub chunk_size: usize,
    /// `pin`.
    pub pin: bool,
    /// `only-hash`: compute the CID without storing.
    pub only_hash: bool,
}

impl KuboAddParams {
    /// The Kubo flags that give the same CID as our importer with `opts`.
    ///
    /// Kubo has no `add` flag for the links-per-node width, so the `unixfs-v1-2025`
    /// profile (1024 links) only gives the same CID on a Kubo configured for it
    /// (`ipfs config profile apply unixfs-v1-2025`, which sets `Import.UnixFSFileMaxLinks`).
    pub fn from_import(opts: &ImportOptions) -> Self {
        let (mut cid_version, mut raw_leaves, chunk_size) = match opts.profile {
            Profile::Kubo => (0, false, 256 * 1024),
            Profile::KuboV1 => (1, true, 256 * 1024),
            Profile::UnixfsV1_2025 => (1, true, 1024 * 1024),
        };
        // As in Kubo (and our importer): choosing a CID version also chooses raw leaves,
        // unless `raw_leaves` says otherwise.
        if let Some(v) = opts.cid_version {
            cid_version = v;
            raw_leaves = v == 1;
        }
        Self {
            cid_version,
            raw_leaves: opts.raw_leaves.unwrap_or(raw_leaves),
            chunk_size: opts.chunk_size.unwrap_or(chunk_size),
            pin: true,
            only_hash: false,
        }
    }

    /// The query string Kubo expects, in a fixed order.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("cid-version", self.cid_version.to_string()),
            ("raw-leaves", self.raw_leaves.to_string()),
            ("chunker", format!("size-{}", self.chunk_size)),
            ("trickle", "false".into()),
            ("hash", "sha2-256".into()),
            ("pin", self.pin.to_string()),
            ("only-hash", self.only_hash.to_string()),
            ("progress", "false".into()),
            ("wrap-with-directory", "false".into()),
        ]
    }
}

/// Kubo's error object: `{"Message": .., "Code": .., "Type": "error"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Code")]
    code: i64,
    #[serde(rename = "Type")]
    kind: String,
}

/// One `/api/v0/add` NDJSON object, with exactly the documented fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddLine {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Size")]
    size: Option<String>,
    #[serde(rename = "Bytes")]
    bytes: Option<i64>,
    #[serde(rename = "Mode")]
    _mode: Option<String>,
    #[serde(rename = "Mtime")]
    _mtime: Option<i64>,
    #[serde(rename = "MtimeNsecs")]
    _mtime_nsecs: Option<i64>,
}

/// `/api/v0/pin/add`'s answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinLine {
    #[serde(rename = "Pins")]
    pins: Option<Vec<String>>,
    #[serde(rename = "Progress")]
    _progress: Option<i64>,
}

/// A client for one Kubo RPC endpoint (`http://127.0.0.1:5001` by default in Kubo).
#[derive(Debug, Clone)]
pub struct KuboClient {
    base: url::Url,
    http: reqwest::Client,
    authorization: Option<String>,
}

impl KuboClient {
    /// A client for the Kubo RPC API at `api` (e.g. `http://127.0.0.1:5001`).
    pub fn new(api: &str) -> KuboResult<Self> {
        let invalid = |reason: &str| KuboError::InvalidUrl {
            url: api.to_owned(),
            reason: reason.to_owned(),
        };
        let mut base = url::Url::parse(api).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(KUBO_CONNECT_TIMEOUT)
            // The RPC answers where it is asked; a 3xx is an unexpected status, not an order to
            // replay the call on another host (reqwest would drop `Authorization` there, not the
            // call).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            base,
            http,
            authorization: None,
        })
    }

    /// Send `Authorization: <value>` with every call (Kubo's `API.Authorizations`,
    /// pinning services, IPFS Cluster's proxy), e.g. `Bearer <token>` or `Basic <b64>`.
    pub fn with_authorization(mut self, value: impl Into<String>) -> Self {
        self.authorization = Some(value.into());
        self
    }

    fn post(&self, endpoint: &'static str) -> reqwest::RequestBuilder {
        // `endpoint` is a constant starting with "/api/v0/"; joining its relative form keeps a base path.
        let mut url = self.base.clone();
        let path = format!("{}{}", url.path(), endpoint.trim_start_matches('/'));
        url.set_path(&path);
        let req = self.http.post(url);
        match &self.authorization {
            Some(auth) => req.header(reqwest::header::AUTHORIZATION, auth),
            None => req,
        }
    }

    async fn send(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> KuboResult<reqwest::Response> {
        let resp = req
            .send()
            .await
            .map_err(|source| KuboError::Transport { endpoint, source })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // The status says what went wrong even if its body breaks off; a body past the limit
        // is refused like any other answer.
        let body = match read_limited(endpoint, resp).await {
            Ok(body) => body,
            Err(KuboError::Transport { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if let Ok(err) = serde_json::from_slice::<ErrorBody>(&body)
            && err.kind == "error"
        {
            return Err(KuboError::Api {
                endpoint,
                status: status.as_u16(),
                message: err.message,
                code: err.code,
            });
        }
        Err(KuboError::UnexpectedStatus {
            endpoint,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        })
    }

    /// `POST /api/v0/version`.
    pub async fn version(&self) -> KuboResult<KuboVersion> {
        const EP: &str = "/api/v0/version";
        let resp = self.send(EP, self.post(EP)).await?;
        let body = read_limited(EP, resp).await?;
        parse_json(EP, &body)
    }

    /// `POST /api/v0/add` of the file at `path` with `params`; streams the file.
    ///
    /// Returns the root Kubo reported for the file. The CID is Kubo's: compare
    /// it with a local `import --only-hash` to check that Kubo used the profile.
    pub async fn add(&self, path: &Path, params: &KuboAddParams) -> KuboResult<KuboAdded> {
        const EP: &str = "/api/v0/add";
        let io = |source| KuboError::Io {
            endpoint: EP,
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        let body = reqwest::Body::wrap_stream(tokio_util_stream(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(name.clone())
            .mime_str("application/octet-stream")
            .map_err(|source| KuboError::Transport {
                endpoint: EP,
                source,
            })?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let req = self.post(EP).query(&params.query()).multipart(form);
        let resp = self.send(EP, req).await?;
        let mut last: Option<KuboAdded> = None;
        let mut lines = NdjsonLines::new(EP, resp);
        while let Some(line) = lines.next().await? {
            if let Ok(err) = serde_json::from_slice::<ErrorBody>(&line)
                && err.kind == "error"
            {
                return Err(KuboError::Api {
                    endpoint: EP,
                    status: 200,
                    message: err.message,
                    code: err.code,
                });
            }
            let parsed: AddLine = parse_json(EP, &line)?;
            match (parsed.hash, parsed.bytes) {
                // A progress event: `{"Name": "", "Bytes": N}`.
                (None, Some(_)) => continue,
                (Some(hash), _) => {
                    let cid = parse_cid(EP, &hash)?;
                    let size = parsed
                        .size
                        .ok_or_else(|| malformed(EP, "add result without Size"))?;
                    let dag_size = size
                        .parse::<u64>()
                        .map_err(|_| malformed(EP, &format!("Size {size:?} is not a number")))?;
                    last = Some(KuboAdded {
                        cid,
                        name: parsed.name.unwrap_or_default(),
                        dag_size,
                    });
                }
                (None, None) => return Err(malformed(EP, "add line with neither Hash nor Bytes")),
            }
        }
        let added = last.ok_or_else(|| malformed(EP, "no add result in the answer"))?;
        if added.name != name {
            return Err(malformed(
                EP,
                &format!(
                    "result names {:?}, not the file sent ({name:?})",
                    added.name
                ),
            ));
        }
        if params.cid_version == 1 && added.cid.version() != cid::Version::V1 {
            return Err(malformed(EP, "asked for cid-version=1, got a CIDv0"));
        }
        Ok(added)
    }

    /// `POST /api/v0/pin/add?arg=<cid>&recursive=true`.
    pub async fn pin_add(&self, cid: &Cid) -> KuboResult<()> {
        const EP: &str = "/api/v0/pin/add";
        let req = self.post(EP).query(&[
            ("arg", cid.to_string()),
            ("recursive", "true".into()),
            ("progress", "false".into()),
        ]);
        let resp = self.send(EP, req).await?;
        let body = read_limited(EP, resp).await?;
        let pin: PinLine = parse_json(EP, &body)?;
        let pins = pin
            .pins
            .ok_or_else(|| malformed(EP, "answer without Pins"))?;
        let mut ok = false;
        for p in &pins {
            ok |= parse_cid(EP, p)? == *cid;
        }
        if !ok {
            return Err(malformed(
                EP,
                &format!("Pins {pins:?} do not include {cid}"),
            ));
        }
        Ok(())
    }

    /// `POST /api/v0/block/get?arg=<cid>`: one raw block, checked against `cid`.
    pub async fn block_get(&self, cid: &Cid) -> KuboResult<Vec<u8>> {
        const EP: &str = "/api/v0/block/get";
        let req = self.post(EP).query(&[("arg", cid.to_string())]);
        let mut resp = self.send(EP, req).await?;
        let mut block = Vec::new();
        let mut read = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|source| KuboError::Transport {
            endpoint: EP,
            source,
        })? {
            read += chunk.len() as u64;
            if read > KUBO_MAX_BLOCK_SIZE as u64 {
                return Err(KuboError::BlockTooLarge {
                    cid: *cid,
                    limit: KUBO_MAX_BLOCK_SIZE,
                    read,
                });
            }
            block.extend_from_slice(&chunk);
        }
        check_block(cid, &block)?;
        Ok(block)
    }

    /// `POST /api/v0/dag/export?arg=<cid>`: streams Kubo's CAR of the DAG into `out`.
    ///
    /// Returns the number of bytes written. More than `max_bytes` is refused
    /// ([`KuboError::AnswerTooLarge`]; what was written before stays in `out`): pass the file's
    /// size plus room for the CAR framing and interior nodes. The CAR is not verified here:
    /// import it with `car import`, which checks every block.
    pub async fn dag_export(
        &self,
        cid: &Cid,
        out: &mut (dyn Write + Send),
        max_bytes: u64,
    ) -> KuboResult<u64> {
        const EP: &str = "/api/v0/dag/export";
        let req = self
            .post(EP)
            .query(&[("arg", cid.to_string()), ("progress", "false".into())]);
        let mut resp = self.send(EP, req).await?;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|source| KuboError::Transport {
            endpoint: EP,
            source,
        })? {
            if written + chunk.len() as u64 > max_bytes {
                return Err(KuboError::AnswerTooLarge {
                    endpoint: EP,
                    status: 200,
                    limit: max_bytes,
                    read: written + chunk.len() as u64,
                });
            }
            out.write_all(&chunk).map_err(|source| KuboError::Io {
                endpoint: EP,
                path: "export output".into(),
                source,
            })?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }
}

/// Check that `block` hashes to `cid`.
fn check_block(cid: &Cid, block: &[u8]) -> KuboResult<()> {
    crate::check_block(cid, block).map_err(|e| match e {
        crate::VerifyError::UnsupportedHash { code, .. } => {
            KuboError::UnsupportedHash { cid: *cid, code }
        }
        _ => KuboError::BlockHashMismatch { cid: *cid },
    })
}

fn malformed(endpoint: &'static str, reason: &str) -> KuboError {
    KuboError::Malformed {
        endpoint,
        reason: reason.to_owned(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
) -> KuboResult<T> {
    serde_json::from_slice(body).map_err(|e| malformed(endpoint, &e.to_string()))
}

fn parse_cid(endpoint: &'static str, s: &str) -> KuboResult<Cid> {
    Cid::try_from(s).map_err(|e| malformed(endpoint, &format!("invalid CID {s:?}: {e}")))
}

/// Read a whole (small) JSON or error body, refusing more than [`KUBO_MAX_JSON_SIZE`] as it
/// streams (whatever `Content-Length` says).
async fn read_limited(endpoint: &'static str, mut resp: reqwest::Response) -> KuboResult<Vec<u8>> {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut read = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| KuboError::Transport { endpoint, source })?
    {
        read += chunk.len() as u64;
        if read > KUBO_MAX_JSON_SIZE as u64 {
            return Err(KuboError::AnswerTooLarge {
                endpoint,
                status,
                limit: KUBO_MAX_JSON_SIZE as u64,
                read,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Splits a streamed NDJSON body into lines of at most [`KUBO_MAX_JSON_SIZE`] bytes, and the
/// whole stream into at most [`KUBO_MAX_STREAM_SIZE`] bytes.
struct NdjsonLines {
    endpoint: &'static str,
    resp: reqwest::Response,
    lines: LineBuffer,
    eof: bool,
    read: u64,
}

impl NdjsonLines {
    fn new(endpoint: &'static str, resp: reqwest::Response) -> Self {
        Self {
            endpoint,
            resp,
            lines: LineBuffer::default(),
            eof: false,
            read: 0,
        }
    }

    fn too_large(&self, limit: u64) -> KuboError {
        KuboError::AnswerTooLarge {
            endpoint: self.endpoint,
            status: self.resp.status().as_u16(),
            limit,
            read: self.read,
        }
    }

    async fn next(&mut self) -> KuboResult<Option<Vec<u8>>> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(Some(line));
            }
            if self.lines.pending() > KUBO_MAX_JSON_SIZE {
                return Err(self.too_large(KUBO_MAX_JSON_SIZE as u64));
            }
            if self.eof {
                return Ok(self.lines.rest());
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|source| KuboError::Transport {
                    endpoint: self.endpoint,
                    source,
                })? {
                Some(chunk) => {
                    self.read += chunk.len() as u64;
                    if self.read > KUBO_MAX_STREAM_SIZE {
                        return Err(self.too_large(KUBO_MAX_STREAM_SIZE));
                    }
                    self.lines.push(&chunk);
                }
                None => self.eof = true,
            }
        }
    }
}

/// Bytes received but not yet returned as lines. Each byte is searched for a newline once and
/// moved at most once per push, so a peer cannot make the work grow with the square of what it
/// sends (a line arriving a byte at a time, or a piece of many empty lines).
#[derive(Debug, Default)]
struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the first line not yet returned.
    start: usize,
    /// Bytes before this offset hold no newline after `start`.
    scanned: usize,
    /// Bytes searched for a newline, in all (to test the linear bound).
    #[cfg(test)]
    searched: usize,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8]) {
        // Drop the lines already returned, once per push rather than once per line.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete, non-empty line without its `\n` (or `\r\n`).
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let tail = self.buf.get(self.scanned..)?;
            let Some(at) = tail.iter().position(|&b| b == b'\n') else {
                #[cfg(test)]
                {
                    self.searched += tail.len();
                }
                self.scanned = self.buf.len();
                return None;
            };
            #[cfg(test)]
            {
                self.searched += at + 1;
            }
            let end = self.scanned + at;
            let mut line = self.buf.get(self.start..end)?;
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = line.to_vec();
            self.start = end + 1;
            self.scanned = self.start;
            if !line.is_empty() {
                return Some(line);
            }
        }
    }

    /// Bytes of the line being received.
    fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The last line, when the stream ended without a newline.
    fn rest(&mut self) -> Option<Vec<u8>> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        (!rest.is_empty()).then_some(rest)
    }
}

/// A file as a stream of chunks for a streamed multipart body (constant memory).
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_params_follow_the_profiles() {
        let p = KuboAddParams::from_import(&ImportOptions {
            profile: Profile::KuboV1,
            ..ImportOptions::default()
        });
        assert_eq!(
            (p.cid_version, p.raw_leaves, p.chunk_size),
            (1, true, 262144)
        );
        let q = p.query();
        assert!(q.contains(&("chunker", "size-262144".into())));
        assert!(q.contains(&("trickle", "false".into())));
        let p = KuboAddParams::from_import(&ImportOptions {
            profile: Profile::Kubo,
            ..ImportOptions::default()
        });
        assert_eq!((p.cid_version, p.raw_leaves), (0, false));
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(matches!(
            KuboClient::new("ftp://x"),
            Err(KuboError::InvalidUrl { .. })
        ));
        assert!(KuboClient::new("http://127.0.0.1:5001").is_ok());
    }

    #[test]
    fn error_body_is_strict() {
        assert!(
            serde_json::from_slice::<ErrorBody>(br#"{"Message":"m","Code":0,"Type":"error"}"#)
                .is_ok()
        );
        assert!(
            serde_json::from_slice::<ErrorBody>(
                br#"{"Message":"m","Code":0,"Type":"error","X":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn lines_are_split_in_linear_time() {
        let mut lines = LineBuffer::default();
        // A line arriving one byte at a time is searched once, not once per byte received.
        let line = vec![b'x'; KUBO_MAX_JSON_SIZE];
        for b in &line {
            lines.push(std::slice::from_ref(b));
            assert_eq!(lines.next_line(), None);
        }
        assert_eq!(lines.searched, KUBO_MAX_JSON_SIZE);
        assert_eq!(lines.pending(), KUBO_MAX_JSON_SIZE);
        lines.push(b"\r\n");
        assert_eq!(lines.next_line(), Some(line));
        // A piece of many empty lines, then lines; each byte searched once.
        let mut piece = vec![b'\n'; 100_000];
        piece.extend_from_slice(b"{\"a\":1}\n\n{\"b\":2}");
        lines.push(&piece);
        assert_eq!(lines.next_line(), Some(b"{\"a\":1}".to_vec()));
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.pending(), 7);
        assert_eq!(
            lines.searched,
            KUBO_MAX_JSON_SIZE + 2 + piece.len(),
            "every byte searched once"
        );
        // A last line without a newline.
        assert_eq!(lines.rest(), Some(b"{\"b\":2}".to_vec()));
        assert_eq!(lines.rest(), None);
    }

    #[test]
    fn block_check_detects_tampering() {
        let data = b"hello";
        let cid = crate::block_cid(cid::Version::V1, crate::RAW, data);
        assert!(check_block(&cid, data).is_ok());
        assert!(matches!(
            check_block(&cid, b"hellO"),
            Err(KuboError::BlockHashMismatch { .. })
        ));
    }
}
