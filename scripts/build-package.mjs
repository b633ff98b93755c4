#!/usr/bin/env node
// `npm run build` (and `npm pack`, through `prepack`): the package's dist/ folder.
// - dist/src, dist/agent: JavaScript and .d.ts compiled by tsc (tsconfig.build.json; the `.ts`
//   import specifiers are rewritten to `.js`), so no TypeScript runs under node_modules;
// - dist/artifacts/contracts: the compiled contracts `kparty chain up` deploys (built first by
//   `npm run build:contracts`), at the same place relative to the code as in a checkout;
// - dist/hardhat.config.js, with which `kparty chain up` runs `hardhat node`;
// - dist/package.json: name and version, which the CLI reads;
// - dist/bin/kparty.js: the executable again, which `kparty gateway serve` re-executes.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist/`;
const contracts = [
  "AuditAnchors",
  "ConsortiumRegistry",
  "CredentialRegistry",
  "interfaces/IConsortiumRegistry",
  "interfaces/ICredentialRegistry",
];

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const compiled = spawnSync(process.execPath, [tsc, "-p", `${root}tsconfig.build.json`], { stdio: "inherit" });
if (compiled.status !== 0) {
  process.stderr.write(`build: tsc failed (exit ${compiled.status})\n`);
  process.exit(1);
}
// tsc copied package.json (the CLI imports its version): keep only what the code reads.
const { name, version, description, license, type } = JSON.parse(readFileSync(`${root}package.json`, "utf8"));
writeFileSync(
  `${dist}package.json`,
  `${JSON.stringify({ name, version, description, license, type }, null, 2)}\n`,
);
for (const path of contracts) {
  const name = path.split("/").pop();
  const from = `${root}artifacts/contracts/${path}.sol/${name}.json`;
  if (!existsSync(from)) {
    process.stderr.write(`build: ${from} is missing; run \`npm run build:contracts\`\n`);
    process.exit(1);
  }
  mkdirSync(`${dist}artifacts/contracts/${path}.sol`, { recursive: true });
  copyFileSync(from, `${dist}artifacts/contracts/${path}.sol/${name}.json`);
}
mkdirSync(`${dist}bin`, { recursive: true });
copyFileSync(`${root}bin/kparty.js`, `${dist}bin/kparty.js`);
