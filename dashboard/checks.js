// The page's checks of untrusted input, shared by every file and form it reads (`publish.js`:
// manifest.json, `claim.js`: claim.json, `setup.js` and `publish.js`: names and reasons). Each
// throws an Error whose message names the field and the problem.

/** `text` parsed as JSON, after bounding its size; `what` names the file. */
export function readJson(text, what, max) {
  if (typeof text !== 'string' || text.length > max) throw new Error(`${what}: at most ${max} bytes`);
  try { return JSON.parse(text); } catch (e) { throw new Error(`${what} is not JSON: ${e.message}`); }
}

/** Refuses `o` unless it is an object with exactly `keys`. */
export function exactKeys(o, keys, what) {
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${what}: expected an object`);
  const extra = Object.keys(o).find((k) => !keys.includes(k)); const missing = keys.find((k) => !(k in o));
  if (extra) throw new Error(`${what}: unknown key ${extra}`);
  if (missing) throw new Error(`${what}: missing ${missing}`);
}

/**
 * Refuses `text` unless it is exactly `ordered` (built by the caller in the CLI's key order)
 * written as the CLI writes files: two-space indentation, a final newline. JSON.parse keeps the
 * last of duplicate keys and reads 1e2 as 100; neither survives this, nor another key order.
 */
export function requireCanonical(text, ordered, what, writer) {
  if (text !== `${JSON.stringify(ordered, null, 2)}\n`) throw new Error(`${what} is not in the canonical form \`${writer}\` writes (key order, spacing, final newline, no duplicate keys)`);
}

/** `x` if it is a whole number a browser reads exactly (below 2^53) and fits `bits`. */
export function safeUint(x, bits, what) {
  if (!Number.isSafeInteger(x) || x < 0) throw new Error(`${what}: expected a whole number a browser reads exactly (below 2^53)`);
  if (BigInt(x) >> BigInt(bits)) throw new Error(`${what}: above uint${bits}`);
  return x;
}

/** `x` if it is lowercase 0x hex of `bytes` bytes (`null`: any whole number of bytes). */
export function lowerHex(x, bytes, what) {
  const re = bytes === null ? /^0x(?:[0-9a-f]{2})*$/ : new RegExp(`^0x[0-9a-f]{${2 * bytes}}$`);
  if (typeof x !== 'string' || !re.test(x)) throw new Error(`${what}: expected lowercase 0x hex${bytes === null ? '' : ` of ${bytes} bytes`}`);
  return x;
}

/**
 * `text` if it reads as what it is: 1 to `max` characters, none of them a control, line
 * separator or format character (bidirectional controls, zero-width characters). `empty` is
 * the message for a missing text.
 */
export function visibleText(text, what, max, empty) {
  if (typeof text !== 'string' || !text.trim()) throw new Error(`${what}: ${empty}`);
  if ([...text].length > max) throw new Error(`${what}: at most ${max} characters`);
  const bad = [...text].find((c) => /[\p{Cc}\p{Cf}\u2028\u2029]/u.test(c));
  if (bad) throw new Error(`${what} holds U+${bad.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')} (control or invisible formatting characters are refused)`);
  return text;
}
