/**
 * `npm run audit:verify -- <gateway.sqlite>`: checks the gateway's hash-chained audit log and
 * prints one JSON object ({valid, records, head, broken?}); exits 1 if the chain is broken.
 */
import { existsSync } from "node:fs";
import { openGatewayDatabase, verifyAuditChain } from "../src/gateway/index.ts";

const file = process.argv[2];
if (!file || !existsSync(file)) {
  process.stderr.write("usage: npm run audit:verify -- <path to the gateway's gateway.sqlite>\n");
  process.exit(2);
}
const db = openGatewayDatabase(file);
try {
  const result = verifyAuditChain(db);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.valid ? 0 : 1;
} finally {
  db.close();
}
