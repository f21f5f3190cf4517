// CP-ABE policies in the page: the human syntax parsed exactly as the cpabe crate parses it
// (`cpabe/src/parse.rs`: quoted attributes with escapes, bare words, case-insensitive
// `and`/`or`/`of`, `a and b and c` one n-ary gate, `k of (…, …)` thresholds, every attribute
// once, at most 512 leaves and 32 levels), its canonical encoding (`Policy::to_bytes`: header
// `OC` 01 05, then per node a tag and big-endian u16 lengths) and its id, the keccak-256 of
// that encoding: the `policyId` a release manifest signs. With it the publish page shows a
// signer the policy only once the text hashes to the id they sign.
// `indexer/tests/dashboard_abi.rs` checks it against the Rust crate on random and mutated
// policies.
import { keccak256 } from './keccak.js';
import { toHex } from './abi.js';

/** Bytes per attribute (cpabe MAX_ATTRIBUTE_LEN). */
export const MAX_ATTRIBUTE_LEN = 256;
/** Leaves per policy (cpabe MAX_POLICY_LEAVES). */
export const MAX_POLICY_LEAVES = 512;
/** Levels per policy (cpabe MAX_POLICY_DEPTH). */
export const MAX_POLICY_DEPTH = 32;
/** Bytes per policy text (cpabe MAX_POLICY_TEXT). */
export const MAX_POLICY_TEXT_BYTES = 64 * 1024;

const WORD = /^[A-Za-z0-9_:\-./@+=]/;
const utf8 = (s) => new TextEncoder().encode(s);
const isKeyword = (w) => ['and', 'or', 'of'].includes(w.toLowerCase());

/** A policy text that cannot be parsed; the message says what and where. */
export class PolicyError extends Error {
  constructor(message, position) { super(`policy: ${message} at ${position}`); this.name = 'PolicyError'; this.position = position; }
}

/**
 * The policy's tree: `{ attr }`, `{ and: [..] }`, `{ or: [..] }` or `{ k, of: [..] }`.
 * Refuses what the cpabe crate refuses (by name, with the position).
 */
export function parsePolicy(text) {
  if (typeof text !== 'string') throw new PolicyError('not a text', 0);
  // A JavaScript string may hold a lone surrogate (JSON "\ud800"), which no Rust text can and
  // TextEncoder would hash as U+FFFD: refused, so two texts never share an id.
  const lone = /\p{Cs}/u.exec(text);
  if (lone) throw new PolicyError('a lone surrogate (not Unicode text)', lone.index);
  if (utf8(text).length > MAX_POLICY_TEXT_BYTES) throw new PolicyError(`policy text longer than ${MAX_POLICY_TEXT_BYTES} bytes`, 0);
  let pos = 0; let leaves = 0;
  const seen = new Set();
  const skip = () => { while (pos < text.length && /\p{White_Space}/u.test(text[pos])) pos++; };
  const next = () => {
    skip();
    const start = pos;
    if (pos >= text.length) return null;
    const c = text[pos];
    if (c === '(' || c === ')' || c === ',') { pos++; return { at: start, punct: c }; }
    if (c === '"') return { at: start, str: string() };
    if (WORD.test(c)) {
      let end = pos;
      while (end < text.length && WORD.test(text[end])) end++;
      const word = text.slice(pos, end); pos = end;
      return { at: start, word };
    }
    throw new PolicyError(`unexpected character ${JSON.stringify(c)}`, start);
  };
  const peek = () => { const save = pos; const t = next(); pos = save; return t; };
  function string() {
    const start = pos; let out = ''; let i = pos + 1;
    const bytes = () => utf8(out).length;
    while (i < text.length) {
      const c = text[i]; const at = i;
      if (c === '"') { pos = i + 1; return out; }
      if (c === '\\') {
        const e = text[i + 1]; i += 2;
        const simple = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r' }[e];
        if (simple !== undefined) out += simple;
        else if (e === 'u' && text[i] === '{') {
          let hex = ''; i++;
          for (;;) {
            const h = text[i++];
            if (h === '}') break;
            if (h === undefined || !/^[0-9a-fA-F]$/.test(h) || hex.length >= 6) throw new PolicyError('invalid escape sequence', at);
            hex += h;
          }
          const cp = hex ? parseInt(hex, 16) : NaN;
          if (!(cp <= 0x10ffff) || (cp >= 0xd800 && cp <= 0xdfff)) throw new PolicyError('invalid escape sequence', at);
          out += String.fromCodePoint(cp);
        } else throw new PolicyError('invalid escape sequence', at);
      } else {
        const cp = text.codePointAt(i);
        out += String.fromCodePoint(cp); i += cp > 0xffff ? 2 : 1;
      }
      if (bytes() > MAX_ATTRIBUTE_LEN) throw new PolicyError(`attribute of ${bytes()} bytes (must be 1..=${MAX_ATTRIBUTE_LEN})`, start);
    }
    throw new PolicyError('unterminated string', start);
  }
  const keyword = (kw) => { const t = peek(); if (t?.word && t.word.toLowerCase() === kw) { next(); return true; } return false; };
  // A gate over `items` (each `{ node, height }`), its height checked as the crate does.
  const gate = (items, make, at) => {
    const height = Math.max(...items.map((p) => p.height));
    if (height + 1 > MAX_POLICY_DEPTH) throw new PolicyError(`nesting deeper than ${MAX_POLICY_DEPTH}`, at);
    return { node: make(items.map((p) => p.node)), height: height + 1 };
  };
  const leaf = (at, attribute) => {
    const len = utf8(attribute).length;
    if (!len || len > MAX_ATTRIBUTE_LEN) throw new PolicyError(`attribute of ${len} bytes (must be 1..=${MAX_ATTRIBUTE_LEN})`, at);
    if (++leaves > MAX_POLICY_LEAVES) throw new PolicyError(`more than ${MAX_POLICY_LEAVES} attributes`, at);
    if (seen.has(attribute)) throw new PolicyError(`attribute ${JSON.stringify(attribute)} occurs more than once`, at);
    seen.add(attribute);
    return { node: { attr: attribute }, height: 1 };
  };
  function or(depth) {
    const at = pos; const items = [and(depth)];
    while (keyword('or')) items.push(and(depth));
    return items.length === 1 ? items[0] : gate(items, (c) => ({ or: c }), at);
  }
  function and(depth) {
    const at = pos; const items = [primary(depth)];
    while (keyword('and')) items.push(primary(depth));
    return items.length === 1 ? items[0] : gate(items, (c) => ({ and: c }), at);
  }
  function close() {
    const t = next();
    if (!t) throw new PolicyError('expected \')\'', text.length);
    if (t.punct !== ')') throw new PolicyError('expected \')\'', t.at);
  }
  function primary(depth) {
    const t = next();
    if (!t) throw new PolicyError('unexpected end of policy', text.length);
    if (t.str !== undefined) return leaf(t.at, t.str);
    if (t.punct === '(') {
      if (depth + 1 > MAX_POLICY_DEPTH) throw new PolicyError(`nesting deeper than ${MAX_POLICY_DEPTH}`, t.at);
      const inner = or(depth + 1); close(); return inner;
    }
    if (t.word !== undefined) {
      const after = peek();
      if (/^[0-9]+$/.test(t.word) && after?.word && after.word.toLowerCase() === 'of') return threshold(t.at, t.word, depth);
      if (isKeyword(t.word)) throw new PolicyError(`keyword ${JSON.stringify(t.word)} used as an attribute (quote it)`, t.at);
      return leaf(t.at, t.word);
    }
    throw new PolicyError('expected an attribute, \'(\' or \'k of (...)\'', t.at);
  }
  function threshold(at, count, depth) {
    const k = BigInt(count);
    keyword('of');
    const open = next();
    if (!open) throw new PolicyError('unexpected end of policy', text.length);
    if (open.punct !== '(') throw new PolicyError('expected \'(\' after \'of\'', open.at);
    if (depth + 1 > MAX_POLICY_DEPTH) throw new PolicyError(`nesting deeper than ${MAX_POLICY_DEPTH}`, at);
    const of = [or(depth + 1)];
    for (;;) {
      const t = next();
      if (!t) throw new PolicyError('expected \')\'', text.length);
      if (t.punct === ',') of.push(or(depth + 1));
      else if (t.punct === ')') break;
      else throw new PolicyError('expected \'and\', \'or\', \',\' or \')\'', t.at);
    }
    if (k === 0n || k > BigInt(of.length)) throw new PolicyError(`threshold ${k} of ${of.length} (need 1 <= k <= n)`, at);
    return gate(of, (c) => ({ k: Number(k), of: c }), at);
  }
  const parsed = or(1);
  const rest = peek();
  if (rest) throw new PolicyError('unexpected text after the policy', rest.at);
  return parsed.node;
}

/** The attributes of a parsed policy, in the text's order. */
export function policyAttributes(tree) {
  if (tree.attr !== undefined) return [tree.attr];
  return (tree.and ?? tree.or ?? tree.of).flatMap(policyAttributes);
}

/** The canonical encoding of a parsed policy (`Policy::to_bytes`). */
export function policyBytes(tree) {
  const out = [0x4f, 0x43, 0x01, 0x05]; // "OC", format 1, kind Policy
  const u16 = (n) => out.push((n >> 8) & 0xff, n & 0xff);
  const node = (n) => {
    if (n.attr !== undefined) { const b = utf8(n.attr); out.push(0x01); u16(b.length); out.push(...b); return; }
    const [tag, children] = n.and ? [0x02, n.and] : n.or ? [0x03, n.or] : [0x04, n.of];
    out.push(tag);
    if (tag === 0x04) u16(n.k);
    u16(children.length);
    children.forEach(node);
  };
  node(tree);
  return new Uint8Array(out);
}

/** The policy id of a policy text: keccak-256 of its canonical encoding, 0x hex. */
export function policyId(text) {
  return toHex(keccak256(policyBytes(parsePolicy(text))));
}
