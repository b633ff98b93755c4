/**
 * The secrets kparty reads from its environment. No child process gets them from its parent's
 * environment: one that needs a secret must be handed it by name in {@link ChildEnvOptions.set}.
 */
export const SECRET_ENV_VARS: readonly string[] = Object.freeze(["KPARTY_PASSPHRASE", "KPARTY_DEPLOYER_KEY"]);

export interface ChildEnvOptions {
  /**
   * What the child is. `"kparty"`: a kparty process (the gateway of the benchmark harness),
   * which reads its own KPARTY_* settings: it keeps them, {@link SECRET_ENV_VARS} excepted.
   * `"foreign"`: any other program (`hardhat node`, `hardhat build`): it gets no KPARTY_*
   * variable at all, so neither the secrets nor an RPC URL that may carry an API key.
   */
  program: "kparty" | "foreign";
  /** Variables set for the child, after the filtering (they win). */
  set?: Readonly<Record<string, string>>;
  /** The environment to start from (default: this process's). */
  parent?: NodeJS.ProcessEnv;
}

/**
 * The environment of a child process that kparty starts: every process kparty spawns or forks
 * builds its environment here.
 *
 * @example
 * ```ts
 * spawn(process.execPath, [hardhatCli, "node"], { env: childEnv({ program: "foreign", set: { FORCE_COLOR: "0" } }) });
 * ```
 */
export function childEnv(options: ChildEnvOptions): Record<string, string> {
  const { program, set = {}, parent = process.env } = options;
  if (program !== "kparty" && program !== "foreign")
    throw new TypeError('program must be "kparty" or "foreign"');
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value === undefined || SECRET_ENV_VARS.includes(name)) continue;
    if (program === "foreign" && name.startsWith("KPARTY_")) continue;
    env[name] = value;
  }
  return Object.assign(env, set);
}
