/**
 * `npm run bench:models`: memory and time of the model store with a 50 MB model — two
 * streamed uploads, a FedAvg round and a streamed download — sampling RSS every 5 ms.
 * The gateway's upload route passes the raw request stream to `submitUpdate`, so this is
 * the path a 50 MB HTTP upload takes. Prints a table and one JSON object as its last line.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { FileModelStore } from "../src/models/index.ts";

const PARAMS = (50 * 1024 * 1024) / 4; // 50 MiB of float32
const CHUNK = 64 * 1024;

function stream(value: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= PARAMS) return this.push(null);
      const n = Math.min(CHUNK / 4, PARAMS - sent);
      this.push(Buffer.from(new Float32Array(n).fill(value).buffer));
      sent += n;
    },
  });
}

const dir = await mkdtemp(join(tmpdir(), "kparty-bench-models-"));
const baseline = process.memoryUsage().rss;
let peak = baseline;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 5);
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
try {
  const store = new FileModelStore(dir);
  await store.register({ id: "big", description: "50 MiB", shape: [PARAMS] });
  let t = performance.now();
  await store.submitUpdate("big", { round: 1, participant: "a", sampleCount: 1, body: stream(1) });
  await store.submitUpdate("big", { round: 1, participant: "b", sampleCount: 3, body: stream(5) });
  const uploadMs = performance.now() - t;
  t = performance.now();
  await store.closeRound("big", 1);
  const aggregateMs = performance.now() - t;
  t = performance.now();
  const { stream: weights, size } = await store.openWeights("big");
  let first: number | undefined;
  for await (const chunk of weights) first ??= (chunk as Buffer).readFloatLE(0);
  const downloadMs = performance.now() - t;
  clearInterval(sampler);
  const result = {
    model_mb: mb(PARAMS * 4),
    rss_baseline_mb: mb(baseline),
    rss_peak_increase_mb: mb(peak - baseline),
    upload_two_updates_ms: Math.round(uploadMs),
    fedavg_ms: Math.round(aggregateMs),
    download_ms: Math.round(downloadMs),
    aggregated_value: first,
    bytes: size,
  };
  process.stdout.write(`\nmodel store, ${result.model_mb} MB model\n`);
  process.stdout.write(
    `  RSS peak increase     ${result.rss_peak_increase_mb} MB (baseline ${result.rss_baseline_mb} MB)\n`,
  );
  process.stdout.write(`  2 uploads (streamed)  ${result.upload_two_updates_ms} ms\n`);
  process.stdout.write(`  FedAvg (by blocks)    ${result.fedavg_ms} ms, first value ${first} (expected 4)\n`);
  process.stdout.write(`  download (streamed)   ${result.download_ms} ms\n`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (first !== 4 || size !== PARAMS * 4) process.exitCode = 1;
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}
