// An EIP-1193 wallet (window.ethereum) as the dashboard uses it: accounts, the chain id
// checked against the indexer's deployment before every transaction, contract reads
// (eth_call through the wallet, so the chain the wallet trusts answers, not the indexer),
// transactions simulated first (a revert is shown by its custom error before anything is
// signed) and followed to their receipt. Nothing here holds a key.
import { FUNCTIONS as F, EVENTS, encodeCall, decodeResult, decode, decodeRevert, toBigInt } from './abi.js';

/** A failed wallet step with the reason people should read (decoded custom error when there is one). */
export class WalletError extends Error {
  constructor(message, revert = null) { super(message); this.name = 'WalletError'; this.revert = revert; }
}

/** The revert data inside a provider error, wherever the wallet put it (MetaMask nests it). */
export function revertData(err) {
  const seen = new Set();
  const walk = (v, depth) => {
    if (v == null || depth > 4) return null;
    if (typeof v === 'string') return /^0x[0-9a-fA-F]{8}([0-9a-fA-F]{2})*$/.test(v) ? v : null;
    if (typeof v !== 'object' || seen.has(v)) return null;
    seen.add(v);
    for (const k of ['data', 'originalError', 'error', 'cause']) { const r = walk(v[k], depth + 1); if (r) return r; }
    return null;
  };
  return walk(err, 0);
}

/** Why a call failed, for people: the decoded custom error, else the provider's message. */
export function reason(err) {
  const data = revertData(err);
  const decoded = data && decodeRevert(data);
  if (decoded) return decoded.text;
  if (data) return `reverted with unknown data ${data.slice(0, 10)}…`;
  return err?.message || String(err);
}

const lower = (a) => String(a).toLowerCase();
const hexQty = (n) => `0x${BigInt(n).toString(16)}`;
/** The ecrecover precompile. */
const ECRECOVER = '0x0000000000000000000000000000000000000001';

/** Formats `amount` (smallest units) with `decimals` decimals, trailing zeros trimmed. */
export function formatUnits(amount, decimals) {
  const base = 10n ** BigInt(decimals); const whole = amount / base; const frac = amount % base;
  if (!frac) return String(whole);
  return `${whole}.${frac.toString().padStart(Number(decimals), '0').replace(/0+$/, '')}`;
}

export class Wallet extends EventTarget {
  /** `provider`: an EIP-1193 object; `deployment`: the indexer's `/v1/deployment`. */
  constructor(provider, deployment) {
    super();
    this.provider = provider; this.deployment = deployment;
    this.expected = BigInt(deployment.chain_id);
    this.account = null; this.chainId = null;
    provider.on?.('accountsChanged', (a) => { this.account = a && a.length ? lower(a[0]) : null; this.dispatchEvent(new Event('change')); });
    provider.on?.('chainChanged', (id) => { this.chainId = BigInt(id); this.dispatchEvent(new Event('change')); });
  }

  request(method, params = []) { return this.provider.request({ method, params }); }

  /** Asks the wallet for an account and reads its chain id. */
  async connect() {
    const accounts = await this.request('eth_requestAccounts');
    if (!Array.isArray(accounts) || !accounts.length) throw new WalletError('the wallet gave no account');
    this.account = lower(accounts[0]);
    this.chainId = BigInt(await this.request('eth_chainId'));
    this.dispatchEvent(new Event('change'));
  }

  /** True when the wallet is on another chain than the deployment's. */
  get wrongChain() { return this.chainId !== null && this.chainId !== this.expected; }

  /** Asks the wallet to switch to the deployment's chain (EIP-3326), then re-reads it. */
  async switchChain() {
    await this.request('wallet_switchEthereumChain', [{ chainId: hexQty(this.expected) }]);
    this.chainId = BigInt(await this.request('eth_chainId'));
    this.dispatchEvent(new Event('change'));
  }

  /** Refuses unless connected and, read fresh from the wallet, on the deployment's chain. */
  async checkChain() {
    if (!this.account) throw new WalletError('connect a wallet first');
    this.chainId = BigInt(await this.request('eth_chainId'));
    if (this.wrongChain) {
      this.dispatchEvent(new Event('change'));
      throw new WalletError(`the wallet is on chain ${this.chainId}, the fleet's contracts are on chain ${this.expected}`);
    }
  }

  /** `f(args)` on `to` via eth_call; the decoded return values. */
  async call(to, f, args = []) {
    const data = await this.request('eth_call', [{ to, data: encodeCall(f, args) }, 'latest']);
    return decodeResult(f, data);
  }

  /**
   * Sends `f(args)` to `to` with `value` wei: checks the chain, simulates (a revert is thrown
   * with its reason and nothing is signed), then eth_sendTransaction. Returns the hash.
   */
  async send(to, f, args, value = 0n) {
    await this.checkChain();
    const tx = { from: this.account, to, data: encodeCall(f, args), value: hexQty(value) };
    try { await this.request('eth_call', [tx, 'latest']); } catch (e) { throw new WalletError(reason(e), revertData(e)); }
    try { return await this.request('eth_sendTransaction', [tx]); } catch (e) { throw new WalletError(`the wallet did not send it: ${reason(e)}`); }
  }

  /**
   * Waits for `hash`'s receipt (polling every `everyMs`); resolves with it when it succeeded,
   * throws a WalletError with the reason (the call replayed on the block before) when it failed.
   */
  async wait(hash, everyMs = 500) {
    for (;;) {
      const r = await this.request('eth_getTransactionReceipt', [hash]);
      if (r) {
        if (BigInt(r.status) === 1n) return r;
        const tx = await this.request('eth_getTransactionByHash', [hash]);
        let why = 'reverted (reason unknown)';
        try {
          await this.request('eth_call', [{ from: tx.from, to: tx.to, data: tx.input, value: tx.value }, hexQty(BigInt(r.blockNumber) - 1n)]);
        } catch (e) { why = reason(e); }
        throw new WalletError(`failed in block ${BigInt(r.blockNumber)}: ${why}`);
      }
      await new Promise((ok) => setTimeout(ok, everyMs));
    }
  }

  /**
   * The address that signed `digest` with the 65-byte `signature` (r ‖ s ‖ v), by the chain's
   * ecrecover precompile through the wallet; null when it recovers nothing. Callers check the
   * signature's shape (and low s) first.
   */
  async recover(digest, signature) {
    const v = parseInt(signature.slice(130), 16);
    const data = `0x${digest.slice(2)}${(v < 27 ? v + 27 : v).toString(16).padStart(64, '0')}${signature.slice(2, 130)}`;
    const out = await this.request('eth_call', [{ to: ECRECOVER, data }, 'latest']);
    return typeof out === 'string' && /^0x[0-9a-fA-F]{64}$/.test(out) ? lower(`0x${out.slice(26)}`) : null;
  }

  // ------------------------------------------------------------ contract reads

  /** The registry's device record: `{ owner, modelId, status }` (status 1 = active). */
  async device(index) {
    const [[owner, modelId, status]] = await this.call(this.deployment.registry, F.device, [index]);
    return { owner, modelId: Number(modelId), status: Number(status) };
  }

  /** The registry's manufacturer record. */
  async manufacturer(id) {
    const [[signersHash, operator, nonce, payee]] = await this.call(this.deployment.registry, F.manufacturer, [id]);
    return { signersHash, operator, nonce, payee };
  }

  /** The registry's release status: `{ version, modelId, publishedAt, revokedAt }` (version 0: unknown). */
  async releaseStatus(id) {
    const [[version, modelId, publishedAt, revokedAt]] = await this.call(this.deployment.registry, F.release, [id]);
    return { version, modelId: Number(modelId), publishedAt, revokedAt };
  }

  /**
   * A release's manifest as the indexer reports it, checked against the chain: the registry's
   * `releaseId(manifest)` must equal `id` (so price and token are the signed ones) and the
   * release must be published. Returns `{ id, manifest, price, token, revoked, symbol, decimals }`.
   */
  async verifiedRelease(id, row) {
    const manifest = [row.model_id, row.version, row.bundle_sha256, row.bundle_size, row.bundle_cid, row.image_sha256,
      row.price, row.payment_token, row.policy_id, row.expiry, row.metadata_hash].map((v) => (typeof v === 'string' && /^[0-9]+$/.test(v) ? BigInt(v) : v));
    const [onChain] = await this.call(this.deployment.registry, F.releaseId, [manifest]);
    if (lower(onChain) !== lower(id)) throw new WalletError(`the indexer's manifest hashes to ${onChain}, not release ${id}: refusing to pay on it`);
    const status = await this.releaseStatus(id);
    if (!status.version) throw new WalletError(`release ${id} is not published on this chain`);
    const token = lower(row.payment_token);
    const eth = /^0x0{40}$/.test(token);
    let symbol = 'ETH', decimals = 18;
    if (!eth) {
      [symbol] = await this.call(token, F.symbol).catch(() => ['tokens']);
      [decimals] = await this.call(token, F.decimals).catch(() => [0n]);
    }
    return { id, manifest, price: toBigInt(row.price), token, eth, revoked: status.revokedAt !== 0n, symbol, decimals: Number(decimals) };
  }

  /** The `Purchased` events of `market` in a receipt: `{ devices, amount, token }`. */
  purchases(receipt) {
    return (receipt.logs || [])
      .filter((l) => lower(l.address) === lower(this.deployment.market) && l.topics?.[0] === EVENTS.Purchased.topic)
      .map((l) => { const [devices, amount, token] = decode(EVENTS.Purchased.data, l.data); return { devices: devices.map(Number), amount, token }; });
  }
}
