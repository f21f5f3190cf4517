#!/usr/bin/env node
// Exports the ABI and bytecode of the deployable contracts from forge's `out/`
// into core/artifacts/<Name>.json, the files the Rust bindings (alloy `sol!`)
// are generated from, so `cargo build` never needs Node or forge.
// `--check` compares instead of writing and fails when they differ.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";

const CONTRACTS = ["UpdateRegistry", "UpdateMarket", "DemoToken"];
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const check = process.argv.includes("--check");
let stale = 0;

for (const name of CONTRACTS) {
  const built = path.join(root, "out", `${name}.sol`, `${name}.json`);
  if (!existsSync(built)) {
    console.error(`export-artifacts: ${built} is missing; run forge build first`);
    process.exit(2);
  }
  const artifact = JSON.parse(readFileSync(built, "utf8"));
  const exported = {
    contractName: name,
    abi: artifact.abi,
    bytecode: { object: artifact.bytecode.object },
    deployedBytecode: { object: artifact.deployedBytecode.object },
  };
  const text = JSON.stringify(exported, null, 2) + "\n";
  const target = path.join(root, "core", "artifacts", `${name}.json`);
  if (check) {
    const committed = existsSync(target) ? readFileSync(target, "utf8") : "";
    if (committed !== text) {
      console.error(`export-artifacts: ${path.relative(root, target)} differs from a fresh forge build; run 'make artifacts' and commit`);
      stale++;
    }
  } else {
    writeFileSync(target, text);
    console.log(`export-artifacts: wrote ${path.relative(root, target)}`);
  }
}
if (stale) process.exit(1);
if (check) console.log("export-artifacts: committed artifacts equal a fresh forge build");
