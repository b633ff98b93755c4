import { anchorAuditHead, getLatestAuditAnchor } from "../chain/actions/audit-anchors.ts";
import type { WalletClient } from "../chain/client.ts";
import { KPartyError } from "../errors/index.ts";
import type { AuditPublicKey } from "../state/audit-keys.ts";
import type { AuditReader, AuditRecord, AuditStore, ModelLock } from "../state/port.ts";

/** Defaults of `--audit-anchor-every` and `--audit-anchor-interval`. */
export const AUDIT_ANCHOR_DEFAULTS = { everyRecords: 1_000, intervalSeconds: 60 } as const;

/** How long `stop` waits for a round under way. */
const STOP_WAIT_MS = 5_000;

/** The lock name replicas take to anchor (never a model id: those are letters, digits and `._-`). */
const ANCHOR_LOCK = "(audit-anchor)";

export interface AuditAnchorSettings {
  /** Anchor once this many records are not anchored (default 1000). */
  everyRecords?: number;
  /** Anchor what is new at least this often (default 60 s). */
  intervalSeconds?: number;
}

/** What one anchoring round did. */
export type AnchorOutcome =
  | { anchored: { seq: number; txHash: string } }
  | { upToDate: { seq: number } }
  | { failed: { code: string } }
  | { skipped: "no records" | "busy" };

/** The anchorer's view of the chain (for `/healthz`-like reports and tests). */
export interface AuditAnchorStatus {
  /** The newest head this process saw anchored (null: none yet, or not read yet). */
  anchoredSeq: number | null;
  /** Failed rounds in a row (0 after a success). */
  failures: number;
  /** The error code of the last failed round. */
  lastError: string | null;
}

export interface AuditAnchorer {
  /** The anchoring account (it pays for the transactions). */
  readonly address: string;
  /** Anchors the chain's current head if it is not anchored yet (one round at a time). */
  tick(): Promise<AnchorOutcome>;
  /** Told of each record appended here: a round starts when `everyRecords` are unanchored. */
  appended(seq: number): void;
  readonly status: AuditAnchorStatus;
  /** Stops the timer and waits for a round under way (at most 5 s). */
  stop(): Promise<void>;
}

function positiveInt(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

/** The settings, checked (misconfiguration: `TypeError`). */
export function resolveAuditAnchorSettings(
  settings: AuditAnchorSettings = {},
): Required<AuditAnchorSettings> {
  return {
    everyRecords: positiveInt(
      settings.everyRecords ?? AUDIT_ANCHOR_DEFAULTS.everyRecords,
      "auditAnchor.everyRecords",
    ),
    intervalSeconds: positiveInt(
      settings.intervalSeconds ?? AUDIT_ANCHOR_DEFAULTS.intervalSeconds,
      "auditAnchor.intervalSeconds",
    ),
  };
}

/**
 * One round: reads the chain's head and the newest anchor of the key's log, and anchors the
 * head unless it is anchored already. `seen` is told the head's seq.
 */
async function anchorRound(
  params: { wallet: WalletClient; keys: AuditPublicKey; reader: AuditReader },
  status: AuditAnchorStatus,
  seen: (seq: number) => void,
): Promise<AnchorOutcome> {
  const [head] = await params.reader.tail(1);
  if (!head) return { skipped: "no records" };
  seen(head.seq);
  const { anchorer, log } = params.keys;
  const latest = await getLatestAuditAnchor(params.wallet, { anchorer, log });
  if (latest && latest.seq >= head.seq) {
    status.anchoredSeq = latest.seq;
    return { upToDate: { seq: latest.seq } };
  }
  const outcome = await anchorAuditHead(params.wallet, { log, seq: head.seq, head: `0x${head.hash}` });
  status.anchoredSeq = head.seq;
  return { anchored: { seq: head.seq, txHash: outcome.transactionHash } };
}

type AnchorerParams = {
  wallet: WalletClient;
  keys: AuditPublicKey;
  reader: AuditReader;
  lock: ModelLock | null;
  now: () => number;
  note: (text: string) => void;
  settings?: AuditAnchorSettings;
  /** Start the interval timer (default true; tests drive `tick` themselves). */
  timer?: boolean;
};

/** What the anchorer keeps between rounds. */
interface AnchorerState {
  status: AuditAnchorStatus;
  /** The round under way, if any. */
  running: Promise<AnchorOutcome> | null;
  /** No round on `appended` before this time (after a failure: the next interval). */
  retryAt: number;
  /** The newest seq this process saw appended or at the head. */
  lastSeen: number;
}

/**
 * Anchors the head of the deployment's audit chain on chain (contracts/AuditAnchors.sol), in the
 * anchoring account's log named by the audit key (see `src/state/audit-keys.ts`): every
 * `intervalSeconds` if anything is new, and as soon as `everyRecords` records are unanchored —
 * one transaction per round, covering every record up to the head (the head's hash chains them
 * all). Replicas on PostgreSQL take a shared lock for the round and read the chain's newest
 * anchor under it, so exactly one anchors a given head. A failed round (RPC down, no funds) is
 * noted in the operator's log (its error code, never a key or a node's text) and retried at the
 * next interval; decisions are served meanwhile and the unanchored window grows (`kparty audit
 * verify` reports it).
 */
export function createAuditAnchorer(params: AnchorerParams): AuditAnchorer {
  const settings = resolveAuditAnchorSettings(params.settings);
  const state: AnchorerState = {
    status: { anchoredSeq: null, failures: 0, lastError: null },
    running: null,
    retryAt: Number.NEGATIVE_INFINITY,
    lastSeen: 0,
  };
  function tick(): Promise<AnchorOutcome> {
    if (state.running) return state.running.then(() => ({ skipped: "busy" }) as const);
    state.running = guardedRound(params, state, settings.intervalSeconds).finally(() => {
      state.running = null;
    });
    return state.running;
  }
  const timer = params.timer === false ? null : startInterval(tick, settings.intervalSeconds);
  return {
    address: params.keys.anchorer,
    tick,
    appended(seq) {
      state.lastSeen = Math.max(state.lastSeen, seq);
      if (state.running || params.now() < state.retryAt) return;
      if (seq - (state.status.anchoredSeq ?? 0) >= settings.everyRecords) void tick();
    },
    status: state.status,
    stop: () => stopAnchorer(timer, state),
  };
}

/**
 * One round under the replicas' lock, its outcome recorded in `state`: a success clears the
 * failures; a failure counts, notes its code and the unanchored records in the operator's log,
 * and holds off rounds on `appended` until the next interval.
 */
async function guardedRound(
  params: AnchorerParams,
  state: AnchorerState,
  intervalSeconds: number,
): Promise<AnchorOutcome> {
  const { status } = state;
  const lock: ModelLock = params.lock ?? ((_name, fn) => fn());
  const seen = (seq: number) => {
    state.lastSeen = Math.max(state.lastSeen, seq);
  };
  try {
    const outcome = await lock(ANCHOR_LOCK, () => anchorRound(params, status, seen));
    status.failures = 0;
    status.lastError = null;
    state.retryAt = Number.NEGATIVE_INFINITY;
    return outcome;
  } catch (error) {
    const code = error instanceof KPartyError ? error.code : "internal";
    status.failures += 1;
    status.lastError = code;
    state.retryAt = params.now() + intervalSeconds * 1000;
    const unanchored = Math.max(0, state.lastSeen - (status.anchoredSeq ?? 0));
    params.note(
      `audit head anchoring failed (${code}) from ${params.keys.anchorer}; ${unanchored} record(s) not anchored; retrying in ${intervalSeconds} s`,
    );
    return { failed: { code } };
  }
}

/** A round every `intervalSeconds` (a timer that does not keep the process alive). */
function startInterval(tick: () => Promise<AnchorOutcome>, intervalSeconds: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    void tick();
  }, intervalSeconds * 1000);
  timer.unref();
  return timer;
}

/** Stops the timer and waits for a round under way, at most `STOP_WAIT_MS`. */
async function stopAnchorer(timer: NodeJS.Timeout | null, state: AnchorerState): Promise<void> {
  if (timer) clearInterval(timer);
  // a round waiting on a slow chain does not hold the gateway's shutdown for long
  let bound: NodeJS.Timeout | undefined;
  await Promise.race([
    state.running,
    new Promise((resolve) => {
      bound = setTimeout(resolve, STOP_WAIT_MS);
    }),
  ]);
  clearTimeout(bound);
}

/** `store` telling `anchorer` of each record it appends. */
export function anchoredAuditStore(store: AuditStore, anchorer: AuditAnchorer): AuditStore {
  return {
    append: (entry) =>
      store.append(entry).then((record: AuditRecord) => {
        anchorer.appended(record.seq);
        return record;
      }),
    get failure() {
      return store.failure;
    },
    close: () => store.close(),
  };
}
