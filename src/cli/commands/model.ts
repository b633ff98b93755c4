import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { KPartyError } from "../../errors/index.ts";
import { writeFileAtomic } from "../../util/atomic-file.ts";
import { openGatewaySession as session } from "../gateway-session.ts";
import { type ModelSettingsInput, modelSettings } from "../model-settings.ts";
import { table } from "../output.ts";
import { list, NO_CONTRACTS, positiveInt, run } from "../run.ts";

async function readWeights(file: string): Promise<Float32Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    throw new KPartyError("invalid_argument", `weights file ${file} not found`);
  }
  if (bytes.byteLength === 0 || bytes.byteLength % 4 !== 0) {
    throw new KPartyError(
      "invalid_argument",
      `weights file ${file} is not float32 values (${bytes.byteLength} bytes)`,
    );
  }
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

const FORMAT = "Weights files hold the raw little-endian float32 values (.f32), as the gateway serves them.";

export function registerModel(program: Command): void {
  const model = program
    .command("model")
    .description("shared models through the gateway, with the access token of `kparty present`")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty model list\n  $ kparty model pull fl-demo --out global.f32\n  $ kparty model push fl-demo --file local.f32 --round 1 --samples 450`,
    );
  modelList(model);
  modelPull(model);
  modelPush(model);
  modelRegister(model);
  modelAggregate(model);
}

function modelList(model: Command): void {
  model
    .command("list")
    .description("the models your token may read")
    .addHelpText("after", `\nExamples:\n  $ kparty model list --data-dir .kparty/alice`)
    .action(
      run(async (ctx) => {
        const { gw, token } = await session(ctx);
        const models = await gw.models(token);
        ctx.out.result(
          { models },
          models.length === 0
            ? ["(none)"]
            : table(
                models.map((m) => [
                  m.id,
                  `v${m.version}`,
                  `round ${m.openRound} open`,
                  `${m.parameterCount} parameters`,
                ]),
              ),
        );
      }, NO_CONTRACTS),
    );
}

function modelPull(model: Command): void {
  model
    .command("pull")
    .description("download a model's current global weights")
    .argument("<model>", "the model id")
    .option("--out <file>", "where to write them (default: <model>.v<version>.f32)")
    .addHelpText("after", `\n${FORMAT}\n\nExamples:\n  $ kparty model pull fl-demo --out global.f32`)
    .action(
      run(async (ctx, options: { out?: string }, id: string) => {
        const { gw, token } = await session(ctx);
        const { weights, version } = await gw.weights(id, token);
        const file = resolve(options.out ?? `${id}.v${version}.f32`);
        await writeFileAtomic(
          file,
          new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength),
          0o644,
        );
        ctx.out.result(
          { model: id, version, parameters: weights.length, bytes: weights.byteLength, file },
          `${id} v${version}: ${weights.length} parameters written to ${file}`,
        );
      }, NO_CONTRACTS),
    );
}

function modelPush(model: Command): void {
  model
    .command("push")
    .description("submit your locally trained weights for the open round")
    .argument("<model>", "the model id")
    .requiredOption("--file <file>", "the weights (.f32)")
    .requiredOption("--round <n>", "the open round", positiveInt("--round"))
    .requiredOption(
      "--samples <n>",
      "training samples behind the update (its FedAvg weight; at most the model's maxSamplesPerUpdate)",
      positiveInt("--samples"),
    )
    .addHelpText(
      "after",
      `\n${FORMAT}\n\nExamples:\n  $ kparty model push fl-demo --file local.f32 --round 1 --samples 450`,
    )
    .action(
      run(async (ctx, options: { file: string; round: number; samples: number }, id: string) => {
        const weights = await readWeights(options.file);
        const { gw, token } = await session(ctx);
        const receipt = await gw.submitUpdate(
          id,
          { round: options.round, sampleCount: options.samples, weights },
          token,
        );
        ctx.out.result(receipt, `update for ${id} round ${receipt.round} accepted (${receipt.bytes} bytes)`);
      }, NO_CONTRACTS),
    );
}

function modelRegister(model: Command): void {
  model
    .command("register")
    .description("register a new shared model (needs round:aggregate)")
    .argument("<model>", "the model id")
    .requiredOption("--shape <dims>", "the weight tensor's shape, comma-separated, e.g. 101 or 784,10")
    .option("--description <text>", "what it is", "")
    .option("--max-samples <n>", "the largest sample count one update may claim (default 1000000)")
    .option("--rule <rule>", "how rounds aggregate: fedavg, median or trimmed-mean (default fedavg)")
    .option(
      "--trim <fraction>",
      "trimmed-mean: the fraction β dropped at each end of a coordinate (default 0.2)",
    )
    .option(
      "--clip-norm <C>",
      "scale each update's delta from the current weights to an L2 norm of at most C",
    )
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty model register fl-demo --shape 101 --description "logistic regression"\n  $ kparty model register fl-robust --shape 101 --max-samples 5000 --rule trimmed-mean --trim 0.2 --clip-norm 5`,
    )
    .action(
      run(async (ctx, options: { shape: string; description: string } & ModelSettingsInput, id: string) => {
        const shape = list(options.shape).map(Number);
        if (shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
          throw new KPartyError(
            "invalid_argument",
            `--shape must be positive integers, got "${options.shape}"`,
          );
        }
        const { gw, token } = await session(ctx);
        const info = await gw.register(
          { id, description: options.description, shape, ...modelSettings(options) },
          token,
        );
        ctx.out.result(
          info,
          `registered ${id} (${info.parameterCount} parameters), round ${info.openRound} open`,
        );
      }, NO_CONTRACTS),
    );
}

function modelAggregate(model: Command): void {
  model
    .command("aggregate")
    .description(
      "close a round: its updates, aggregated under the model's rule (FedAvg by default), become the next version (needs round:aggregate)",
    )
    .argument("<model>", "the model id")
    .requiredOption("--round <n>", "the open round", positiveInt("--round"))
    .addHelpText("after", `\nExamples:\n  $ kparty model aggregate fl-demo --round 1`)
    .action(
      run(async (ctx, options: { round: number }, id: string) => {
        const { gw, token } = await session(ctx);
        const closed = await gw.closeRound(id, options.round, token);
        ctx.out.result(
          closed,
          `${id} round ${options.round} closed: ${closed.aggregated} update(s), now v${closed.version}`,
        );
      }, NO_CONTRACTS),
    );
}
