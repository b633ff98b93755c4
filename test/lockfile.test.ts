import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

interface LockEntry {
  optional?: boolean;
  os?: string[];
  cpu?: string[];
}

/**
 * The packages of a lockfile that npm must install (not optional) yet that are restricted to
 * some platforms by `os` or `cpu`: each makes `npm ci` fail with EBADPLATFORM elsewhere.
 */
function platformOnlyRequired(lock: { packages?: Record<string, LockEntry> }): string[] {
  return Object.entries(lock.packages ?? {})
    .filter(([path, entry]) => path !== "" && !entry.optional && (entry.os || entry.cpu))
    .map(([path]) => path.replace(/^.*node_modules\//, ""));
}

describe("portable install (package-lock.json)", () => {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));

  it("holds no non-optional package restricted to one platform", () => {
    expect(platformOnlyRequired(lock)).toEqual([]);
  });

  it("the check finds such a package (a direct native binding, as kparty once had)", () => {
    const bad = {
      packages: {
        "": {},
        "node_modules/@nomicfoundation/edr-linux-x64-gnu": { dev: true, os: ["linux"], cpu: ["x64"] },
        "node_modules/@nomicfoundation/edr-darwin-arm64": { optional: true, os: ["darwin"], cpu: ["arm64"] },
        "node_modules/fastify": {},
      },
    };
    expect(platformOnlyRequired(bad)).toEqual(["@nomicfoundation/edr-linux-x64-gnu"]);
  });

  it("lists every EDR binding as optional, and package.json names none of them directly", () => {
    const bindings = Object.keys(lock.packages).filter((p) => /node_modules\/@nomicfoundation\/edr-/.test(p));
    expect(bindings.map((p) => p.replace(/^node_modules\//, "")).sort()).toEqual([
      "@nomicfoundation/edr-darwin-arm64",
      "@nomicfoundation/edr-darwin-x64",
      "@nomicfoundation/edr-linux-arm64-gnu",
      "@nomicfoundation/edr-linux-arm64-musl",
      "@nomicfoundation/edr-linux-x64-gnu",
      "@nomicfoundation/edr-linux-x64-musl",
      "@nomicfoundation/edr-win32-x64-msvc",
    ]);
    expect(bindings.filter((p) => !lock.packages[p].optional)).toEqual([]);
    const direct = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies });
    expect(direct.filter((name) => name.startsWith("@nomicfoundation/edr"))).toEqual([]);
  });

  it("asks for Node >= 22.18, the version bin/kparty.js checks", () => {
    expect(pkg.engines).toEqual({ node: ">=22.18" });
    expect(readFileSync(join(ROOT, "bin/kparty.js"), "utf8")).toContain("major === 22 && minor < 18");
  });

  it("npm run setup finds this platform's EDR binding loaded and does nothing", () => {
    const setup = spawnSync(process.execPath, [join(ROOT, "scripts/ensure-platform.mjs")], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect([setup.status, setup.stdout, setup.stderr]).toEqual([0, "", ""]);
  });
});
