import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { buildProgram } from "../src/cli/main.ts";
import { buildGateway } from "../src/gateway/index.ts";
import { DOCS, documentedCommands, documentedImports, ROOT, resolveCommand } from "./fixtures/docs.ts";
import { figureChecks, unreferencedFigures } from "./fixtures/figures.ts";
import { offlineGatewayOptions } from "./fixtures/offline-gateway.ts";

/** The options a command accepts: its own and its ancestors' (global options), and --help. */
function accepted(command: Command): Set<string> {
  const names = new Set(["--help", "-h"]);
  for (let c: Command | null = command; c; c = c.parent) {
    for (const o of c.options) for (const flag of [o.long, o.short]) if (flag) names.add(flag);
  }
  return names;
}

describe("the docs' kparty commands", () => {
  const program = buildProgram();
  const all = DOCS.flatMap((file) => documentedCommands(file).map((line) => ({ file, line })));

  it("finds the commands the docs show (a check that reads nothing cannot fail)", () => {
    expect(all.length).toBeGreaterThan(60);
  });

  it.each(all)("$file: $line — an existing command with existing options", ({ line }) => {
    const { path, command, options } = resolveCommand(program, line);
    // a bare `kparty` or `kparty --help` names the program itself; anything else names a command
    if (path.length === 0)
      expect(
        options.every((o) => accepted(program).has(o)),
        line,
      ).toBe(true);
    else expect(command.commands.length === 0 || path.length > 0, line).toBe(true);
    const known = accepted(command);
    expect(
      options.filter((o) => !known.has(o)),
      `${line}: options that \`kparty ${path.join(" ")}\` does not have`,
    ).toEqual([]);
  });

  it.each(
    DOCS.flatMap((file) =>
      documentedCommands(file)
        .map((line) => ({ file, line, words: line.split(/\s+/).slice(1) }))
        // `kparty --help` names the program; `kparty <command> --help` stands for any command
        .filter(({ words }) => words.length > 0 && !/^(-|<)/.test(words[0] ?? "")),
    ),
  )("$file: $line — names a command that exists", ({ line }) => {
    const { path } = resolveCommand(program, line);
    expect(path.length, `${line}: no such command`).toBeGreaterThan(0);
  });
});

/** The routes `buildGateway`'s TSDoc lists (`METHOD /path`, later paths of a group taking its method). */
function routesInBuildGatewayDoc(): { routes: string[]; count: number } {
  const source = readFileSync(join(ROOT, "src/gateway/app.ts"), "utf8");
  const doc =
    source.match(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*export async function buildGateway\(/)?.[1] ?? "";
  const text = doc.replace(/\n\s*\* ?/g, " ");
  const routes: string[] = [];
  let method: string | undefined;
  for (const [, span] of text.matchAll(/`([^`]+)`/g)) {
    const full = span?.match(/^(GET|POST|PUT|PATCH|DELETE) (\/\S*)$/);
    if (full) [, method] = full;
    if (full) routes.push(`${full[1]} ${full[2]}`);
    else if (method && span?.startsWith("/")) routes.push(`${method} ${span}`);
    else method = undefined;
  }
  return { routes, count: Number(text.match(/serving these (\d+) routes/)?.[1]) };
}

describe("buildGateway's TSDoc", () => {
  it("lists every route the gateway serves, no other, and counts them", async () => {
    const gateway = await buildGateway(offlineGatewayOptions());
    await gateway.ready();
    const served = gateway.kpartyRoutes.map((r) => `${r.method} ${r.url}`).sort();
    await gateway.close();
    const { routes, count } = routesInBuildGatewayDoc();
    expect(routes.sort()).toEqual(served);
    expect(count).toBe(served.length);
  });
});

describe("the docs' imports", () => {
  it("are found in the TypeScript blocks (test/package.test.ts imports each from the packed install)", () => {
    expect(documentedImports()).toEqual(
      expect.arrayContaining(
        ["createChainClient", "createProvider"]
          .map((name) => ({ file: "docs/middleware.md", specifier: "kparty/chain", name }))
          .concat(
            ["createKPartyProtection", "errorHeaders", "errorResponse"].map((name) => ({
              file: "docs/middleware.md",
              specifier: "kparty/gateway",
              name,
            })),
          ),
      ),
    );
  });
});

/** The docs whose benchmark figures must each carry a reference or state their run. */
const FIGURE_DOCS = [
  "README.md",
  "docs/performance.md",
  "docs/deployment.md",
  "docs/tokens.md",
  "docs/security.md",
];

describe("the docs' benchmark figures", () => {
  const checks = DOCS.filter((f) => f.endsWith(".md")).flatMap((file) => figureChecks(ROOT, file));

  it("finds the references (a check that reads nothing cannot fail)", () => {
    expect(checks.length).toBeGreaterThan(100);
  });

  it.each(checks)("$where: $shown is $reference", ({ shown, expected }) => {
    expect(shown).toBe(expected);
  });

  it.each(FIGURE_DOCS)(
    "%s: every figure in a table or in prose that quotes a benchmark has a source",
    (file) => {
      expect(unreferencedFigures(ROOT, file)).toEqual([]);
    },
  );

  it("keeps a record of the run in every results file", () => {
    const files = readdirSync(join(ROOT, "bench/results")).filter((f) => f.endsWith(".json"));
    const runs = files.map((f) => JSON.parse(readFileSync(join(ROOT, "bench/results", f), "utf8")).run);
    expect(runs.map((r) => [typeof r?.script, /^20\d\d-\d\d-\d\d/.test(r?.date)])).toEqual(
      files.map(() => ["string", true]),
    );
  });
});

describe("the figure checks themselves", () => {
  const dir = mkdtempSync(join(tmpdir(), "kparty-figures-"));
  mkdirSync(join(dir, "bench"));
  writeFileSync(
    join(dir, "bench/r.json"),
    JSON.stringify({ a: { p50: 1.234, p99: 2928 }, s: "79.7% of 3025" }),
  );
  const doc = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return name;
  };
  const results = (file: string) => figureChecks(dir, file).map((c) => [c.reference, c.shown, c.expected]);

  it("compares each referenced figure with the file's value, rounded as shown", () => {
    const file = doc(
      "a.md",
      "p50 1.2 ms, p99 2,928 /s<!-- bench:bench/r.json#a.p50,a.p99 --> and 79.7%<!-- bench:bench/r.json#s -->\n" +
        "wrong: 2,929 /s<!-- bench:bench/r.json#a.p99 -->, gone: 5<!-- bench:bench/r.json#b -->\n",
    );
    expect(results(file)).toEqual([
      ["bench/r.json#a.p50", "1.2", "1.2"],
      ["bench/r.json#a.p99", "2928", "2928"],
      ["bench/r.json#s", "79.7", "79.7"],
      ["bench/r.json#a.p99", "2929", "2928"],
      ["bench/r.json#b", "5", "missing: bench/r.json#b"],
    ]);
  });

  it("reads a table's results-file columns in the rows that name their keys", () => {
    const file = doc(
      "b.md",
      "| figure | run <!-- bench-file:bench/r.json --> |\n|---|---|\n" +
        "| p50 / p99 <!-- bench-keys:a.p50,a.p99 --> | 1.23 / 2,928 /s |\n| p99 <!-- bench-keys:a.p99 --> | 1 / 2 ms |\n",
    );
    expect(results(file)).toEqual([
      ["bench/r.json#a.p50", "1.23", "1.23"],
      ["bench/r.json#a.p99", "2928", "2928"],
      ["bench/r.json#a.p99", "1 2", "1 figures"],
    ]);
  });

  it("flags a figure of a table or of prose quoting a benchmark with no source, and nothing else", () => {
    const file = doc(
      "c.md",
      [
        "| figure | value |\n|---|---|\n| c64 over 10 ms | 2,900 /s |\n",
        "<!-- figures: settings -->\n| bound | value |\n|---|---|\n| poll | 100 ms |\n",
        "`npm run bench` gave 42.5 ms, within ≤ 250 ms; `maxDelayMs` (200 ms).\n",
        "`npm run bench` on 2026-12-07 gave 42.5 ms.\n",
        "A poll every 100 ms.\n",
      ].join("\n"),
    );
    expect(unreferencedFigures(dir, file)).toEqual(["c.md:3: 2,900 /s", "c.md:10: 42.5 ms"]);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));
});

describe("the Node version kparty needs", () => {
  it("is one figure in package.json's engines, bin/kparty.js's check and README.md", () => {
    const engines = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).engines.node as string;
    const bin = readFileSync(join(ROOT, "bin/kparty.js"), "utf8");
    const check = bin.match(/major < (\d+) \|\| \(major === (\d+) && minor < (\d+)\)/);
    const readme = readFileSync(join(ROOT, "README.md"), "utf8").match(/`engines` says `(>=[\d.]+)`/)?.[1];
    expect([engines, `>=${check?.[1]}.${check?.[3]}`, `>=${check?.[2]}.${check?.[3]}`, readme]).toEqual(
      Array(4).fill(engines),
    );
    expect(bin).toContain(`needs Node >= ${engines.slice(2)}`);
  });
});

describe("the cost of a public-key recovery", () => {
  it("is one figure wherever a doc gives it", () => {
    const figures = DOCS.filter((f) => f.endsWith(".md")).flatMap((file) =>
      [
        ...readFileSync(join(ROOT, file), "utf8")
          .replace(/\s+/g, " ")
          .matchAll(/recover(?:y|ed|ies)?\b[^.;]{0,80}?about ([\d.]+) ms/gi),
      ].map((m) => [file, m[1]]),
    );
    expect(figures.length).toBeGreaterThan(3);
    expect(figures).toEqual(figures.map(([file]) => [file, "1.5"]));
  });
});
