import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { defaultThreadPoolSize, sizeThreadPool, threadPoolSize } from "./thread-pool.ts";

describe("libuv's thread pool size", () => {
  it("reads UV_THREADPOOL_SIZE as libuv does (checked against the libuv-worker threads of Node 22)", () => {
    const sizes = [undefined, "2", " 3x", "abc", "0", "-1", "5000", "1024"].map((value) =>
      threadPoolSize({ UV_THREADPOOL_SIZE: value }),
    );
    expect(sizes).toEqual([4, 2, 3, 1, 1, 1024, 1024, 1024]);
  });

  it("defaults to one thread per core, at least 2, and leaves a size that is set alone", () => {
    expect(defaultThreadPoolSize()).toBe(Math.max(2, availableParallelism()));
    const unset: NodeJS.ProcessEnv = {};
    sizeThreadPool(unset);
    expect(unset).toEqual({ UV_THREADPOOL_SIZE: String(Math.max(2, availableParallelism())) });
    const set: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: "7" };
    sizeThreadPool(set);
    expect(set).toEqual({ UV_THREADPOOL_SIZE: "7" });
  });
});
