import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openGatewayDatabase, verifyAuditChain } from "../src/gateway/index.ts";
import { postJson } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, DOMAIN, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";
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
    const answered: { presentation: string; status: number; token?: string }[] = [];
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
        } catch {
          // the connection died with the process
        }
      }),
    );
    const granted = answered.filter((a) => a.status === 200);
    expect(crashed).toBe(true);
    expect(granted.length).toBeGreaterThanOrEqual(10);

    const second = await startGatewayProcess(config);
    processes.push(second);

    // every token a client received was audited before it was sent
    const db = openGatewayDatabase(dbFile);
    const rows = Number(
      (
        db
          .prepare("SELECT COUNT(*) AS n FROM audit WHERE route = '/auth/token' AND outcome = 'granted'")
          .get() as { n: number }
      ).n,
    );
    expect(rows).toBeGreaterThanOrEqual(granted.length);
    expect(verifyAuditChain(db)).toMatchObject({ valid: true });
    db.close();

    // a challenge used before the crash stays used
    for (const { presentation } of granted.slice(0, 3)) {
      const again = await postJson(second.url, "/auth/token", { presentation });
      expect([again.status, again.body.error?.code]).toEqual([401, "challenge_reused"]);
    }
    // tokens of the dead process end with it (its key lived only in memory); new ones work
    const old = await fetch(`${second.url}/models/${MODEL_ID}`, {
      headers: { authorization: `Bearer ${granted[0]?.token}` },
    });
    expect(old.status).toBe(401);
    const { challenge } = (await postJson(second.url, "/auth/challenge", {})).body as { challenge: string };
    const fresh = await world.alice.handle.agent.kpartyCreatePresentation({
      holder: world.alice.did,
      credentials: [cred.jwt],
      challenge,
      domain: DOMAIN,
    });
    expect((await postJson(second.url, "/auth/token", { presentation: fresh })).status).toBe(200);
    const after = openGatewayDatabase(dbFile);
    expect(verifyAuditChain(after)).toMatchObject({ valid: true });
    after.close();
  });
});
