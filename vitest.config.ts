import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts", "agent/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // two files at a time: most of a test's time is waiting (a chain, HTTP, a child process, scrypt),
    // and vitest's default on a 2-core machine (cores - 1) runs the files one by one
    maxWorkers: 2,
    execArgv: ["--disable-warning=ExperimentalWarning"],
  },
});
