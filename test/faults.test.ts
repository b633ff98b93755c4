import { fork } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyAgent } from "../agent/index.ts";
import { getAnchor } from "../src/chain/index.ts";
import { openGatewayDatabase, verifyAuditChain } from "../src/gateway/index.ts";
import { postJson, tokenAt } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, DOMAIN, type KPartyWorld, MODEL_ID, PASSPHRASE } from "./fixtures/kparty.ts";
import { type GatewayProcess, startGatewayProcess } from "./fixtures/process.ts";

let world: KPartyWorld;
const processes: GatewayProcess[] = [];
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  for (const p of processes) await p.stop();
  await world?.close();
});

describe("the gateway process is killed mid-load and restarted", () => {
  it("loses no audit entry, lets no challenge be reused, and keeps the audit chain intact", async () => {
    const dbFile = join(world.dir, "crashing-gateway", "gateway.sqlite");
    const config = {
      rpcUrl: world.chain.url,
      deployment: world.deployment,
      modelsDir: join(world.dir, "models"),
      dbFile,
    };
    const first = await startGatewayProcess(config);
    processes.push(first);
    const cred = await issue(world.orgA, world.alice);
    const presentations: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { challenge } = (await postJson(first.url, "/auth/challenge", {})).body as { challenge: string };
      presentations.push(
        await world.alice.handle.agent.kpartyCreatePresentation({
          holder: world.alice.did,
          credentials: [cred.jwt],
          challenge,
          domain: DOMAIN,
        }),
      );
    }
    // each presentation is either answered (before the crash) or cut off with the process
    const answered: { presentation: string; status: number; token?: string }[] = [];
    const cut: string[] = [];
    let crashed = false;
    await Promise.all(
      presentations.map(async (presentation) => {
        try {
          const res = await postJson(first.url, "/auth/token", { presentation });
          answered.push({ presentation, status: res.status, token: res.body.access_token });
          if (answered.length === 10 && !crashed) {
            crashed = true;
            first.crash();
          }
        } catch (error) {
          // only the connection dying with the process, and only after the crash
          const cause = (error as { cause?: { code?: string; message?: string } }).cause;
          expect([crashed, `${cause?.code ?? ""} ${cause?.message ?? ""}`]).toEqual([
            true,
            expect.stringMatching(/ECONNRESET|ECONNREFUSED|EPIPE|UND_ERR_SOCKET|other side closed/),
          ]);
          cut.push(presentation);
        }
      }),
    );
    expect(crashed).toBe(true);
    expect(answered.length + cut.length).toBe(presentations.length);
    // every answer the process gave is a grant with a token
    expect(answered.filter((a) => a.status !== 200 || typeof a.token !== "string")).toEqual([]);

    const db = openGatewayDatabase(dbFile);
    const auditedGrants = () =>
      Number(
        (
          db
            .prepare("SELECT COUNT(*) AS n FROM audit WHERE route = '/auth/token' AND outcome = 'granted'")
            .get() as { n: number }
        ).n,
      );
    const beforeRestart = auditedGrants();
    expect(verifyAuditChain(db)).toMatchObject({ valid: true });

    const second = await startGatewayProcess(config);
    processes.push(second);
    // a challenge used before the crash stays used: every answered presentation is refused now
    for (const { presentation } of answered) {
      const again = await postJson(second.url, "/auth/token", { presentation });
      expect([again.status, again.body.error?.code]).toEqual([401, "challenge_reused"]);
    }
    // a cut-off one was either consumed before the crash (reused now) or never reached (granted now)
    const retried = await Promise.all(
      cut.map(async (presentation) => (await postJson(second.url, "/auth/token", { presentation })).status),
    );
    const consumedUnanswered = retried.filter((status) => status === 401).length;
    expect(retried.filter((status) => status !== 401 && status !== 200)).toEqual([]);
    // every token a client received was audited before it was sent (audited ⊇ answered); a
    // grant audited beyond those is one whose answer died with the process, whose challenge
    // was therefore consumed (audited ⊆ consumed)
    // (bounds, not margins: where the SIGKILL lands is random by design; these are the invariants)
    expect(beforeRestart - answered.length).toBeGreaterThanOrEqual(0);
    expect(beforeRestart - answered.length).toBeLessThanOrEqual(consumedUnanswered);
    // the retries granted now are audited as grants, exactly one each
    expect(auditedGrants()).toBe(beforeRestart + (cut.length - consumedUnanswered));
    db.close();

    // tokens of the dead process stay valid (its key is in the database), and new ones work
    const old = await fetch(`${second.url}/models/${MODEL_ID}`, {
      headers: { authorization: `Bearer ${answered[0]?.token}` },
    });
    expect(old.status).toBe(200);
    expect((await tokenAt(second.url, world.alice, cred.jwt)).status).toBe(200);
    const after = openGatewayDatabase(dbFile);
    expect(verifyAuditChain(after)).toMatchObject({ valid: true });
    after.close();
  });
});

describe("the parent of a gateway process goes away", () => {
  it("the gateway closes, keeping what it audited, and exits 0 by itself", async () => {
    const dbFile = join(world.dir, "orphaned-gateway", "gateway.sqlite");
    const gateway = await startGatewayProcess({
      rpcUrl: world.chain.url,
      deployment: world.deployment,
      modelsDir: join(world.dir, "models"),
      dbFile,
    });
    processes.push(gateway);
    const cred = await issue(world.orgA, world.alice);
    expect((await tokenAt(gateway.url, world.alice, cred.jwt)).status).toBe(200);
    gateway.child.disconnect(); // what the IPC channel does when the parent dies
    // a bound on waiting for a real process to exit (never reached when it passes), not a measure
    const outcome = await Promise.race([
      gateway.exited,
      new Promise((resolve) => setTimeout(() => resolve("still running after 20 s"), 20_000).unref()),
    ]);
    expect(outcome).toEqual([0, null]);
    const db = openGatewayDatabase(dbFile);
    const granted = db
      .prepare("SELECT COUNT(*) AS n FROM audit WHERE route = '/auth/token' AND outcome = 'granted'")
      .get() as { n: number };
    expect(Number(granted.n)).toBe(1);
    expect(verifyAuditChain(db)).toMatchObject({ valid: true, records: 1 });
    db.close();
  });
});

describe("the issuer process is killed during batch issuance", () => {
  it("never reuses a status index, and anchors every recorded batch exactly once after resuming", async () => {
    const dataDir = join(world.dir, "members", "org-b");
    await world.orgB.handle.close(); // the child process takes the agent's store
    const child = fork(fileURLToPath(new URL("../scripts/issuer-process.ts", import.meta.url)), [], {
      execArgv: ["--import", "tsx", "--disable-warning=ExperimentalWarning"],
      env: {
        ...process.env,
        KPARTY_ISSUER_CONFIG: JSON.stringify({
          rpcUrl: world.chain.url,
          deployment: world.deployment,
          dataDir,
          passphrase: PASSPHRASE,
          issuer: world.orgB.did,
          subject: world.alice.did,
          batchSize: 16,
        }),
      },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const completed: { root: string; indexes: number[] }[] = [];
    await new Promise<void>((resolve, reject) => {
      child.on("message", (m: { type: string; root: string; indexes: number[] }) => {
        if (m.type !== "batch") return;
        completed.push(m);
        // kill somewhere inside the third batch: signing, recording, or anchoring
        if (completed.length === 2) {
          const kill = () => {
            child.kill("SIGKILL");
            resolve();
          };
          setTimeout(kill, Math.floor(Math.random() * 150));
        }
      });
      child.once("exit", (code, signal) =>
        signal ? undefined : reject(new Error(`issuer exited with ${code}`)),
      );
    });
    await exited;

    // the dead process's store lock is taken over; its records and keys are intact
    world.orgB.handle = await createKPartyAgent({
      role: "issuer",
      dataDir,
      passphrase: PASSPHRASE,
      chain: { provider: world.chain.provider, deployment: world.deployment },
    });
    const agent = world.orgB.handle.agent;
    // what the killed process recorded but did not anchor: at most the batch it was in
    const pendingRoots = new Set(
      (await agent.kpartyListIssuedCredentials({ issuer: world.orgB.did }))
        .filter((r) => r.anchoredBlock === null)
        .map((r) => r.anchorRoot),
    );
    expect(pendingRoots.has(null)).toBe(false);
    expect(pendingRoots.size).toBeLessThanOrEqual(1); // 0 or 1 by where the kill lands; resumed exactly below
    expect(await agent.kpartyResumeAnchoring({})).toEqual({ credentials: 0, batches: pendingRoots.size });
    expect(await agent.kpartyResumeAnchoring({})).toEqual({ credentials: 0, batches: 0 });

    const records = await agent.kpartyListIssuedCredentials({ issuer: world.orgB.did });
    const indexes = records.map((r) => r.statusIndex);
    expect(new Set(indexes).size).toBe(indexes.length);
    expect(records.every((r) => r.anchoredBlock !== null)).toBe(true);
    const roots = [...new Set(records.map((r) => r.anchorRoot).filter((r): r is string => r !== null))];
    for (const root of roots) {
      const record = records.find((r) => r.anchorRoot === root);
      expect(await getAnchor(world.client, { issuer: world.orgB.account, key: root })).toEqual({
        blockNumber: record?.anchoredBlock,
      });
    }
    for (const { root, indexes: batch } of completed) {
      expect(roots).toContain(root);
      expect(batch.every((i) => indexes.includes(i))).toBe(true);
    }
    const next = await issue(world.orgB, world.alice);
    // past every recorded index; how far depends on what the killed process had allocated
    expect(next.statusIndex).toBeGreaterThan(Math.max(...indexes));
  });
});
