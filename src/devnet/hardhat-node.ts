import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { repairEdr } from "./edr.ts";
import { hardhatCommand } from "./hardhat-command.ts";

export interface LocalChain {
  url: string;
  chainId: number;
  /** The node's process id. */
  pid: number;
  /** Stops the chain; safe to call more than once. */
  stop(): Promise<void>;
  /** Kills the node with SIGKILL (a crash: its in-memory chain is gone) and waits for it to exit. */
  kill(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `hardhat node` on 127.0.0.1 and a free port as a child process (chain 31337) and
 * resolves once it serves JSON-RPC. The child's environment has no KPARTY_* variable, so
 * neither the key passphrase nor the deployer key ({@link hardhatCommand}). The child is
 * killed when `stop()` is called and when this process exits. Where it exits at once because
 * npm (on Node < 22) skipped Hardhat's native binding, the checkout's setup step installs it and
 * the node is started once more ({@link repairEdr}: `config_invalid` naming the fix where it cannot).
 *
 * @example
 * ```ts
 * const chain = await startHardhatNode();
 * try { … chain.url … } finally { await chain.stop(); }
 * ```
 */
export async function startHardhatNode(
  options: { port?: number; timeoutMs?: number } = {},
): Promise<LocalChain> {
  try {
    return await startNode(options);
  } catch (error) {
    // exited at once: where npm skipped Hardhat's native binding, install it and try once more
    if (!(error instanceof NodeExited) || !repairEdr()) throw error;
    return startNode(options);
  }
}

/** `hardhat node` exited before it served JSON-RPC (its output in the message). */
class NodeExited extends Error {}

async function startNode(options: { port?: number; timeoutMs?: number }): Promise<LocalChain> {
  const port = options.port ?? (await freePort());
  const command = hardhatCommand(["node", "--hostname", "127.0.0.1", "--port", String(port)]);
  const child: ChildProcess = spawn(command.file, command.args, command.options);
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    }
  };

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new Error(
          `hardhat node did not start within ${options.timeoutMs ?? 60_000} ms:\n${output.slice(-2000)}`,
        ),
      );
    }, options.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Started HTTP and WebSocket JSON-RPC server")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new NodeExited(`hardhat node exited with ${code}:\n${output.slice(-2000)}`));
    });
  }).catch(async (error) => {
    await stop();
    throw error;
  });
  // Drain output so the child never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  const kill = async () => {
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  return { url: `http://127.0.0.1:${port}`, chainId: 31337, pid: child.pid as number, stop, kill };
}
