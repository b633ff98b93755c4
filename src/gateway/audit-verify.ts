import type { AuditAnchor } from "../chain/actions/audit-anchors.ts";
import { type AuditPublicKey, auditVerifyKey, verifyAuditHash } from "../state/audit-keys.ts";
import type { AuditReader, AuditRecord } from "../state/port.ts";
import { auditHash, GENESIS_HASH } from "./audit.ts";

/**
 * What `kparty audit verify` finds wrong, each at a record (`seq`, through `toSeq` for a run):
 * - `missing`: records absent from the sequence (deleted);
 * - `broken_link`: a record that does not name its predecessor's hash (deleted, reordered);
 * - `edited`: a record whose content does not match its hash;
 * - `bad_signature`: a signature that is not the audit key's over the record's hash (forged,
 *   or the record was re-hashed by someone without the key);
 * - `unsigned`: an unsigned record after signed ones (signatures stripped);
 * - `unknown_key`: a record signed by a key the state does not hold;
 * - `rehashed`: a record whose hash is not the head anchored on chain for it (the chain was
 *   recomputed, consistent with itself but not with the anchor);
 * - `truncated`: anchored records missing after the last record (the log was cut);
 * - `key_replaced`: the state's audit key is not the one whose anchoring account was expected;
 * - `head_row`: PostgreSQL's head row does not name the last record (`seq` is the row's).
 */
export type AuditProblemKind =
  | "missing"
  | "broken_link"
  | "edited"
  | "bad_signature"
  | "unsigned"
  | "unknown_key"
  | "rehashed"
  | "truncated"
  | "key_replaced"
  | "head_row";

export interface AuditProblem {
  kind: AuditProblemKind;
  seq: number;
  /** The last record of a run of the same problem (absent: one record). */
  toSeq?: number;
  /** The anchoring transaction the problem was measured against (rehashed, truncated). */
  txHash?: string;
}

/** The report of `kparty audit verify` (its `--json` output, with the location added). */
export interface AuditReport {
  valid: boolean;
  /** Records read. */
  records: number;
  /** The last record read (null: none). */
  head: { seq: number; hash: string } | null;
  /** The audit key in the state (null: no gateway with a passphrase has run). */
  key: AuditPublicKey | null;
  /** Records from before records were signed (not tampering: reported as such). */
  unsigned: { fromSeq: number; toSeq: number } | null;
  /** Whether the anchors were read from the chain (false: a deployment without AuditAnchors, or no key). */
  anchorsChecked: boolean;
  /** The newest head anchored on chain (seq 0: none). */
  anchoredThrough: { seq: number; txHash?: string };
  /** Records not covered by an anchor yet (null: none). */
  unanchored: { fromSeq: number; toSeq: number } | null;
  problems: AuditProblem[];
}

/** Problems collected, consecutive ones of a kind merged into a run. */
function problemList() {
  const problems: AuditProblem[] = [];
  return {
    problems,
    add(problem: AuditProblem) {
      const last = problems.at(-1);
      if (last && last.kind === problem.kind && (last.toSeq ?? last.seq) + 1 === problem.seq) {
        last.toSeq = problem.toSeq ?? problem.seq;
        return;
      }
      problems.push(problem);
    },
  };
}

/**
 * Walks the records page by page, checking sequence, links, hashes and signatures, and each
 * anchored head against the record it names; then reports anchored records missing at the end,
 * and the window not anchored yet. `anchors` are the heads read from the chain for the key's log
 * (null: not read). `expectedAnchorer`: the anchoring account the auditor expects (a replaced
 * key is reported).
 */
export async function verifyAuditLog(params: {
  reader: AuditReader;
  key: AuditPublicKey | null;
  anchors: AuditAnchor[] | null;
  expectedAnchorer?: string;
  pageSize?: number;
}): Promise<AuditReport> {
  const { reader, key } = params;
  const out = problemList();
  /** Problems measured against anchors, listed after the records' own. */
  const anchored: AuditProblem[] = [];
  if (params.expectedAnchorer && key?.anchorer.toLowerCase() !== params.expectedAnchorer.toLowerCase())
    out.add({ kind: "key_replaced", seq: 0 });
  const publicKey = key ? auditVerifyKey(key.x) : null;
  const anchors = [...(params.anchors ?? [])].sort((a, b) => a.seq - b.seq);
  const anchorAt = new Map(anchors.map((a) => [a.seq, a]));
  const walk = { previous: GENESIS_HASH, expected: 1, records: 0, signedSeen: false };
  let unsigned: AuditReport["unsigned"] = null;
  let head: AuditReport["head"] = null;
  const check = (r: AuditRecord) => {
    if (r.seq > walk.expected)
      out.add({
        kind: "missing",
        seq: walk.expected,
        ...(r.seq - 1 > walk.expected ? { toSeq: r.seq - 1 } : {}),
      });
    else if (r.prevHash !== walk.previous) out.add({ kind: "broken_link", seq: r.seq });
    if (auditHash(r) !== r.hash) out.add({ kind: "edited", seq: r.seq });
    if (!r.sig || !r.kid) {
      if (walk.signedSeen) out.add({ kind: "unsigned", seq: r.seq });
      else unsigned = { fromSeq: unsigned?.fromSeq ?? r.seq, toSeq: r.seq };
    } else {
      walk.signedSeen = true;
      if (!publicKey || r.kid !== key?.kid) out.add({ kind: "unknown_key", seq: r.seq });
      else if (!verifyAuditHash(publicKey, r.hash, r.sig)) out.add({ kind: "bad_signature", seq: r.seq });
    }
    const anchor = anchorAt.get(r.seq);
    if (anchor && anchor.head.toLowerCase() !== `0x${r.hash}`.toLowerCase())
      anchored.push({ kind: "rehashed", seq: r.seq, ...(anchor.txHash ? { txHash: anchor.txHash } : {}) });
    walk.previous = r.hash;
    walk.expected = r.seq + 1;
    walk.records += 1;
    head = { seq: r.seq, hash: r.hash };
  };
  const pageSize = params.pageSize ?? 1000;
  for (let after = 0; ; ) {
    const page = await reader.page(after, pageSize);
    for (const r of page) check(r);
    if (page.length < pageSize) break;
    after = (page.at(-1) as AuditRecord).seq;
  }
  const row = await reader.headRow();
  const last = head as AuditReport["head"];
  if (row && (row.seq !== (last?.seq ?? 0) || (last !== null && row.hash !== last.hash)))
    anchored.push({ kind: "head_row", seq: row.seq });
  return finish({
    problems: [...out.problems, ...anchored],
    anchors,
    head,
    unsigned,
    records: walk.records,
    key,
    checked: params.anchors !== null,
  });
}

function finish(params: {
  problems: AuditProblem[];
  anchors: AuditAnchor[];
  head: AuditReport["head"];
  unsigned: AuditReport["unsigned"];
  records: number;
  key: AuditPublicKey | null;
  checked: boolean;
}): AuditReport {
  const { problems, anchors, head } = params;
  const lastSeq = head?.seq ?? 0;
  const newest = anchors.at(-1);
  if (newest && newest.seq > lastSeq)
    problems.push({
      kind: "truncated",
      seq: lastSeq + 1,
      ...(newest.seq > lastSeq + 1 ? { toSeq: newest.seq } : {}),
      ...(newest.txHash ? { txHash: newest.txHash } : {}),
    });
  const anchoredSeq = newest?.seq ?? 0;
  return {
    valid: problems.length === 0,
    records: params.records,
    head,
    key: params.key,
    unsigned: params.unsigned,
    anchorsChecked: params.checked,
    anchoredThrough: { seq: anchoredSeq, ...(newest?.txHash ? { txHash: newest.txHash } : {}) },
    unanchored: lastSeq > anchoredSeq ? { fromSeq: anchoredSeq + 1, toSeq: lastSeq } : null,
    problems,
  };
}
