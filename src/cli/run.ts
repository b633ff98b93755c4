import { type Command, InvalidArgumentError as InvalidOptionArgument } from "commander";
import { contractsBuilt, ensureContractsBuilt } from "../devnet/build-contracts.ts";
import { integerIn } from "../util/integer.ts";
import { CliContext, type GlobalOptions } from "./context.ts";
import type { Output } from "./output.ts";

/**
 * Wraps a command's body: builds its context from the global and command options, runs it,
 * and releases whatever it opened, whether it succeeded or not. Errors propagate to `main`,
 * which prints them and picks the exit code. `usesContracts: false` marks a command that
 * never opens an agent or a chain client (audit, model), so it never compiles the contracts.
 */
export function run<A extends unknown[], O extends object>(
  body: (ctx: CliContext, options: O, ...args: A) => Promise<void>,
  { usesContracts = true }: { usesContracts?: boolean } = {},
): (...all: unknown[]) => Promise<void> {
  return async (...all: unknown[]) => {
    const command = all[all.length - 1] as Command;
    const options = command.optsWithGlobals() as O & GlobalOptions;
    const ctx = new CliContext(options);
    try {
      // Agents and chain clients read the contracts' ABIs: a fresh clone compiles them once.
      if (usesContracts && !contractsBuilt()) {
        ctx.out.info("compiling kparty's contracts (first run only)…");
        await ensureContractsBuilt();
      }
      await body(ctx, options, ...(all.slice(0, -2) as A));
    } finally {
      await ctx.close();
    }
  };
}

/** For `run`: the command reads no contract ABI (see `usesContracts`). */
export const NO_CONTRACTS = { usesContracts: false } as const;

/**
 * How long-running commands (chain up, gateway serve) announce that they are ready and then
 * wait: prints `value` (or the `human` lines) as the command's result and resolves on the
 * first SIGINT or SIGTERM. It listens for both before printing, so a supervisor that stops the
 * command as soon as it reads the ready line gets the command's own clean stop, never the
 * signal's default action.
 */
export function readyUntilSignal(
  out: Pick<Output, "result">,
  value: unknown,
  human: string | string[],
): Promise<NodeJS.Signals> {
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(signal);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
  out.result(value, human);
  return signalled;
}

/** Splits a comma-separated option value. */
export function list(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Parses a positive integer option, or throws `invalid_argument` naming it. */
export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const n = integerIn(value, 1, max);
    if (n === null)
      throw new InvalidOptionArgument(`${name} must be an integer from 1 to ${max}, got "${value}"`);
    return n;
  };
}
