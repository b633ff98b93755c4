import { availableParallelism } from "node:os";

/** libuv's most threads in its pool. */
const MAX_THREADS = 1024;

/**
 * The size of libuv's thread pool in a process whose environment is `env`, read as libuv reads
 * `UV_THREADPOOL_SIZE` when the pool starts: 4 when unset; otherwise the leading integer
 * (`atoi`), 0 (or no number) meaning 1, and a negative number or one over 1024 meaning 1024.
 */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.UV_THREADPOOL_SIZE;
  if (value === undefined) return 4;
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n === 0) return 1;
  return n < 0 || n > MAX_THREADS ? MAX_THREADS : n;
}

/**
 * The pool size kparty's processes start with unless `UV_THREADPOOL_SIZE` says otherwise: one
 * thread per core, at least 2. The gateway checks signatures on the pool; libuv's default of 4
 * threads leaves cores idle on a larger machine, and on a 2-core one puts more threads in the
 * cores' queues than they serve, where the event loop, which every request passes through,
 * waits its turn (docs/performance.md: seven interleaved pairs of runs on 2 cores, p99 at half
 * the peak under 10 ms in six with 2 threads, in four with 4).
 */
export function defaultThreadPoolSize(): number {
  return Math.min(MAX_THREADS, Math.max(2, availableParallelism()));
}

/**
 * Sets `UV_THREADPOOL_SIZE` to {@link defaultThreadPoolSize} in `env` unless it is set. For a
 * process's own pool, only before the pool first runs anything (libuv reads the variable then):
 * first thing in the process.
 */
export function sizeThreadPool(env: NodeJS.ProcessEnv = process.env): void {
  env.UV_THREADPOOL_SIZE ??= String(defaultThreadPoolSize());
}
