/**
 * DPoP proofs (RFC 9449) for curl, with node:crypto alone — what any client of a kparty gateway
 * has to do, in one file that imports nothing from kparty (see docs/tokens.md):
 *
 *   node scripts/dpop-proof.ts keygen [EdDSA|ES256|ES256K] > dpop-key.json   (a private JWK: keep it secret)
 *   node scripts/dpop-proof.ts proof dpop-key.json POST http://127.0.0.1:8080/auth/token
 *   node scripts/dpop-proof.ts proof dpop-key.json GET http://127.0.0.1:8080/models/fl-demo "$TOKEN"
 *   node scripts/dpop-proof.ts jkt dpop-key.json                             (the key's cnf.jkt)
 *
 * A proof is for one request: make a new one for each (the gateway refuses a jti it has seen).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
} from "node:crypto";
import { readFileSync } from "node:fs";

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/** The public members of the key, in the lexicographic order RFC 7638 hashes them in. */
function publicJwk(privateJwk: Record<string, string>): Record<string, string> {
  const { crv, kty, x, y } = createPublicKey({ format: "jwk", key: privateJwk }).export({ format: "jwk" });
  return kty === "OKP"
    ? { crv: crv as string, kty, x: x as string }
    : { crv: crv as string, kty: kty as string, x: x as string, y: y as string };
}

function algOf(jwk: Record<string, string>): "EdDSA" | "ES256" | "ES256K" {
  if (jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.crv === "P-256") return "ES256";
  if (jwk.crv === "secp256k1") return "ES256K";
  throw new Error(`unsupported key curve ${jwk.crv}`);
}

function proof(privateJwk: Record<string, string>, method: string, url: string, token?: string): string {
  const alg = algOf(privateJwk);
  const target = new URL(url);
  const header = { typ: "dpop+jwt", alg, jwk: publicJwk(privateJwk) };
  const payload: Record<string, unknown> = {
    jti: randomUUID(),
    htm: method.toUpperCase(),
    htu: `${target.protocol}//${target.host}${target.pathname}`, // no query, no fragment
    iat: Math.floor(Date.now() / 1000),
  };
  if (token) payload.ath = b64url(createHash("sha256").update(token, "ascii").digest());
  if (process.env.DPOP_NONCE) payload.nonce = process.env.DPOP_NONCE; // when the gateway asks for one
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const key = createPrivateKey({ format: "jwk", key: privateJwk });
  // ECDSA signatures in JWS are r || s (IEEE P1363), not DER
  const signature =
    alg === "EdDSA"
      ? sign(null, Buffer.from(input), key)
      : sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(signature)}`;
}

const [command, ...args] = process.argv.slice(2);
const readKey = (file: string | undefined) =>
  JSON.parse(readFileSync(file ?? "dpop-key.json", "utf8")) as Record<string, string>;
if (command === "keygen") {
  const alg = args[0] ?? "EdDSA";
  const { privateKey } =
    alg === "EdDSA"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: alg === "ES256K" ? "secp256k1" : "P-256" });
  process.stdout.write(`${JSON.stringify(privateKey.export({ format: "jwk" }))}\n`);
} else if (command === "proof" && args.length >= 3) {
  const [file, method, url, token] = args as [string, string, string, string | undefined];
  process.stdout.write(`${proof(readKey(file), method, url, token)}\n`);
} else if (command === "jkt") {
  const canonical = JSON.stringify(publicJwk(readKey(args[0])));
  process.stdout.write(`${b64url(createHash("sha256").update(canonical).digest())}\n`);
} else {
  process.stderr.write(
    "usage: dpop-proof.ts keygen [EdDSA|ES256|ES256K] | proof KEY METHOD URL [TOKEN] | jkt KEY\n",
  );
  process.exit(2);
}
