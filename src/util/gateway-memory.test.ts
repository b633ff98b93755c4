import { describe, expect, it } from "vitest";
import { gatewayStartSettings } from "./gateway-memory.ts";

describe("a gateway process's memory settings", () => {
  it("adds both to a process started without them", () => {
    expect(gatewayStartSettings({}, [])).toEqual({
      env: { MALLOC_ARENA_MAX: "2" },
      execArgv: ["--max-semi-space-size=8"],
    });
    expect(gatewayStartSettings({ NODE_OPTIONS: "--max-old-space-size=512" }, ["--inspect"])).toEqual({
      env: { MALLOC_ARENA_MAX: "2" },
      execArgv: ["--max-semi-space-size=8"],
    });
  });

  it("leaves a semi-space size set in the Node options or NODE_OPTIONS, in any of V8's spellings", () => {
    for (const [env, execArgv] of [
      [{}, ["--max-semi-space-size=16"]],
      [{}, ["--max_semi_space_size=4"]],
      [{ NODE_OPTIONS: "--max-semi-space-size 32" }, []],
      [{ NODE_OPTIONS: "--trace-gc --max-semi-space-size=1" }, []],
    ] as const) {
      expect(gatewayStartSettings(env, execArgv)).toEqual({ env: { MALLOC_ARENA_MAX: "2" }, execArgv: [] });
    }
  });

  it("leaves the arenas set by MALLOC_ARENA_MAX or GLIBC_TUNABLES", () => {
    for (const env of [
      { MALLOC_ARENA_MAX: "8" },
      { MALLOC_ARENA_MAX: "" },
      { GLIBC_TUNABLES: "glibc.malloc.arena_max=4" },
      { GLIBC_TUNABLES: "glibc.malloc.trim_threshold=128:glibc.malloc.arena_max=1" },
    ]) {
      expect(gatewayStartSettings(env, [])).toEqual({ env: {}, execArgv: ["--max-semi-space-size=8"] });
    }
    expect(gatewayStartSettings({ GLIBC_TUNABLES: "glibc.malloc.arena_test=2" }, [])).toEqual({
      env: { MALLOC_ARENA_MAX: "2" },
      execArgv: ["--max-semi-space-size=8"],
    });
  });

  it("asks for nothing once both are set, so a restarted gateway does not restart again", () => {
    const first = gatewayStartSettings({}, []);
    expect(gatewayStartSettings({ ...first.env }, first.execArgv)).toEqual({ env: {}, execArgv: [] });
  });

  it("does not take a longer option for the semi-space size", () => {
    expect(
      gatewayStartSettings({ NODE_OPTIONS: "--max-semi-space-sizes=3" }, ["--min-semi-space-size=1"]),
    ).toEqual({
      env: { MALLOC_ARENA_MAX: "2" },
      execArgv: ["--max-semi-space-size=8"],
    });
  });
});
