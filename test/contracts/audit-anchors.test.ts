import { keccak256, toUtf8Bytes, Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anchorAuditHead,
  createChainClient,
  createWalletClient,
  type Deployment,
  deployKParty,
  getLatestAuditAnchor,
  listAuditAnchors,
  type WalletClient,
} from "../../src/chain/index.ts";
import { startTestChain, type TestChain } from "../fixtures/chain.ts";

/** AuditAnchors through src/chain on a real chain: events, custom errors decoded, per-anchorer logs. */
let chain: TestChain;
let deployment: Deployment;
let a: WalletClient;
let b: WalletClient;
const LOG = keccak256(toUtf8Bytes("log one"));
const head = (n: number) => keccak256(toUtf8Bytes(`head ${n}`));

beforeAll(async () => {
  chain = await startTestChain();
  const [deployer, other] = chain.accounts as [TestChain["accounts"][0], TestChain["accounts"][0]];
  deployment = await deployKParty({
    deployer,
    founders: [{ account: await deployer.getAddress(), did: "did:ethr:0x7a69:a", name: "A" }],
    quorum: 1,
  });
  a = createWalletClient({ signer: deployer, deployment });
  b = createWalletClient({ signer: other, deployment });
});
afterAll(async () => {
  chain.provider.destroy();
  await chain.stop();
});

describe("AuditAnchors", () => {
  it("anchors a head and emits AuditHeadAnchored(anchorer, log, seq, head)", async () => {
    const outcome = await anchorAuditHead(a, { log: LOG, seq: 3, head: head(3) });
    expect(outcome.events).toEqual([
      {
        name: "AuditHeadAnchored",
        args: { anchorer: await a.signer.getAddress(), log: LOG, seq: 3, head: head(3) },
      },
    ]);
    expect(await getLatestAuditAnchor(a, { anchorer: await a.signer.getAddress(), log: LOG })).toEqual({
      seq: 3,
      head: head(3),
    });
  });

  it("refuses a seq not above the newest with AuditAnchorsSeqNotIncreasing(log, latest, seq), and a zero head", async () => {
    await expect(anchorAuditHead(a, { log: LOG, seq: 3, head: head(4) })).rejects.toMatchObject({
      code: "chain_reverted",
      details: { error: "AuditAnchorsSeqNotIncreasing", args: [LOG, "3", "3"] },
    });
    await expect(anchorAuditHead(a, { log: LOG, seq: 2, head: head(2) })).rejects.toMatchObject({
      code: "chain_reverted",
      details: { error: "AuditAnchorsSeqNotIncreasing", args: [LOG, "3", "2"] },
    });
    await expect(
      anchorAuditHead(a, { log: LOG, seq: 9, head: `0x${"00".repeat(32)}` }),
    ).rejects.toMatchObject({
      code: "chain_reverted",
      details: { error: "AuditAnchorsZeroHead", args: [] },
    });
    await expect(anchorAuditHead(a, { log: LOG, seq: 0, head: head(0) })).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });

  it("keeps each anchorer's logs apart: another account's seq 1 in the same log id is its own", async () => {
    await anchorAuditHead(b, { log: LOG, seq: 1, head: head(1) });
    await anchorAuditHead(a, { log: LOG, seq: 7, head: head(7) });
    const client = createChainClient({ provider: chain.provider, deployment });
    const mine = await listAuditAnchors(client, { anchorer: await a.signer.getAddress() });
    expect([...mine.keys()]).toEqual([LOG]);
    expect(mine.get(LOG)?.map((x) => [x.seq, x.head])).toEqual([
      [3, head(3)],
      [7, head(7)],
    ]);
    const theirs = await listAuditAnchors(client, { anchorer: await b.signer.getAddress(), log: LOG });
    expect(theirs.get(LOG)?.map((x) => [x.seq, x.head])).toEqual([[1, head(1)]]);
    const nobody = Wallet.createRandom().address;
    expect(await getLatestAuditAnchor(client, { anchorer: nobody, log: LOG })).toBeNull();
  });
});
