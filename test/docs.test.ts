import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../src/cli/main.ts";
import { buildGateway } from "../src/gateway/index.ts";
import { DOCS, documentedCommands, documentedImports, ROOT, resolveCommand } from "./fixtures/docs.ts";
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
