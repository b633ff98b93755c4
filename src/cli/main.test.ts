import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "./main.ts";

function leaves(command: Command, path: string[] = []): { path: string[]; command: Command }[] {
  const here = { path, command };
  return [here, ...command.commands.flatMap((c) => leaves(c, [...path, c.name()]))];
}

describe("the kparty program", () => {
  it("every command and group has a description and help with examples", () => {
    const all = leaves(buildProgram()).filter(({ path }) => path.at(-1) !== "help");
    expect(all.map(({ path }) => path.join(" ")).sort()).toEqual(
      [
        "",
        "audit",
        "audit tail",
        "audit verify",
        "chain",
        "chain fund",
        "chain up",
        "credential",
        "credential issue",
        "credential export",
        "credential list",
        "credential reinstate",
        "credential resume",
        "credential revoke",
        "credential status",
        "credential suspend",
        "deploy",
        "did",
        "did create",
        "did list",
        "gateway",
        "gateway clients",
        "gateway clients add",
        "gateway clients list",
        "gateway clients remove",
        "gateway keys",
        "gateway keys rotate",
        "gateway serve",
        "init",
        "issuer",
        "issuer clients",
        "issuer clients add",
        "issuer clients list",
        "issuer clients remove",
        "issuer serve",
        "member",
        "member approve",
        "member execute",
        "member list",
        "member propose",
        "member propose add",
        "member propose quorum",
        "member propose remove",
        "member propose revoke",
        "member rotate-key",
        "model",
        "model aggregate",
        "model list",
        "model pull",
        "model push",
        "model register",
        "present",
        "status",
      ].sort(),
    );
    for (const { path, command } of all) {
      let help = "";
      command.configureOutput({ writeOut: (s) => (help += s) });
      command.outputHelp();
      expect(command.description(), path.join(" ")).not.toBe("");
      expect(help, `kparty ${path.join(" ")} --help`).toMatch(/\nExamples:\n {2}\$ ([A-Z_]+=\S+ )?kparty /);
    }
  });
});
