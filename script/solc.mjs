#!/usr/bin/env node
// solc shim for forge: answers `--version` and `--standard-json` through the
// solc-js API (the npm `solc` package pinned in package.json), so forge needs
// no native solc download. forge's `--allow-paths` / `--base-path` arguments
// are ignored; imports are resolved relative to the working directory, which
// is the repository root whenever forge runs from there.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const solc = require("solc");
const args = process.argv.slice(2);

// The compiler version this project builds with (also pinned exactly in
// package.json and by every `pragma solidity`): refuse any other solc-js.
const PINNED = "0.8.37";
if (!solc.version().startsWith(`${PINNED}+`)) {
  process.stderr.write(`solc.mjs: solc-js ${solc.version()} is installed, this project pins ${PINNED}; run 'npm ci'\n`);
  process.exit(2);
}

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write(`solc.mjs: unsupported arguments: ${args.join(" ")} (only --version and --standard-json)\n`);
  process.exit(2);
}

// Directories forge allows imports from; the first that has the file wins.
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === "--base-path" || args[i] === "--include-path") && args[i + 1]) roots.push(args[i + 1]);
  if (args[i] === "--allow-paths" && args[i + 1]) roots.push(...args[i + 1].split(","));
}

function findImports(p) {
  for (const root of roots) {
    const full = path.isAbsolute(p) ? p : path.join(root, p);
    try {
      return { contents: readFileSync(full, "utf8") };
    } catch {
      // try the next root
    }
  }
  return { error: `file not found: ${p}` };
}

const input = readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
