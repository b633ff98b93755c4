import { redactUrl } from "../util/redact.ts";

/** A live `eth_subscribe` to the registries' logs (see {@link subscribeLogs}). */
export interface LogSubscription {
  /** True while the socket is open and the node has confirmed the subscription. */
  readonly live: boolean;
  /** Closes the socket for good (no reconnection). */
  close(): void;
}

export interface LogSubscriptionOptions {
  /** A `ws://` or `wss://` JSON-RPC URL (Hardhat's node serves WebSocket on its HTTP port). */
  url: string;
  /** The contracts whose logs are pushed. */
  addresses: string[];
  /**
   * Called for every pushed log (with the log as the node sent it), and once the subscription is
   * (re)established (without one).
   */
  onLog: (log?: Record<string, unknown>) => void;
  /** Called when the socket is lost or the subscription refused (the caller falls back to polling). */
  onDown?: () => void;
  /** First wait before reconnecting (default 250 ms), doubled per failure up to `maxReconnectMs` (default 10 s). */
  minReconnectMs?: number;
  maxReconnectMs?: number;
}

/** Checks that `url` is a WebSocket URL (its secrets are never echoed). */
export function checkPushUrl(url: string): void {
  if (!/^wss?:\/\/[^\s/]+/.test(url))
    throw new TypeError(`the push URL must be ws:// or wss://, got ${redactUrl(url)}`);
}

/** The `eth_subscribe` request (id 1) for the logs of `addresses`. */
function subscribeRequest(addresses: string[]): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "eth_subscribe",
    params: ["logs", { address: addresses }],
  });
}

/**
 * What a message of the node is: the answer to the subscription (`subscribed` with its id,
 * `refused` otherwise), a pushed `log` (the log, if it is an object), or null for anything else.
 */
function pushMessageOf(
  data: unknown,
):
  | { kind: "subscribed" }
  | { kind: "refused" }
  | { kind: "log"; log: Record<string, unknown> | undefined }
  | null {
  let message: { id?: number; result?: unknown; method?: string; params?: { result?: unknown } };
  try {
    message = JSON.parse(String(data)) as typeof message;
  } catch {
    return null;
  }
  if (message.id === 1)
    return typeof message.result === "string" ? { kind: "subscribed" } : { kind: "refused" };
  if (message.method !== "eth_subscription") return null;
  const log = message.params?.result;
  return {
    kind: "log",
    log: typeof log === "object" && log !== null ? (log as Record<string, unknown>) : undefined,
  };
}

/**
 * Subscribes to the logs of `addresses` over a WebSocket (`eth_subscribe`, `"logs"`) and calls
 * `onLog` for each: a hint to read the chain now, not an event to apply (the caller's poll reads
 * and checks it, so a lying or reorganised push cannot change state). A lost socket or a refused
 * subscription calls `onDown` and is retried after a bounded back-off; meanwhile the caller polls.
 * Uses Node's own WebSocket client.
 *
 * @example
 * ```ts
 * const sub = subscribeLogs({ url: "ws://127.0.0.1:8545", addresses, onLog: () => void feed.poll() });
 * ```
 */
export function subscribeLogs(options: LogSubscriptionOptions): LogSubscription {
  checkPushUrl(options.url);
  const minWait = options.minReconnectMs ?? 250;
  const maxWait = options.maxReconnectMs ?? 10_000;
  let wait = minWait;
  let live = false;
  let closed = false;
  let socket: WebSocket | null = null;
  let retry: NodeJS.Timeout | null = null;

  const down = () => {
    const was = live;
    live = false;
    socket = null;
    if (was) options.onDown?.();
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = null;
      connect();
    }, wait);
    retry.unref();
    wait = Math.min(maxWait, wait * 2);
  };

  function onMessage(ws: WebSocket, data: unknown) {
    const message = pushMessageOf(data);
    if (message?.kind === "refused") return ws.close(); // back off, poll meanwhile
    if (message?.kind === "subscribed") {
      live = true;
      wait = minWait;
      options.onLog(); // what happened while the socket was down is read now
    } else if (message?.kind === "log" && live) {
      options.onLog(message.log);
    }
  }

  function connect() {
    if (closed) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(options.url);
    } catch {
      return down();
    }
    socket = ws;
    ws.addEventListener("open", () => ws.send(subscribeRequest(options.addresses)));
    ws.addEventListener("message", (event) => onMessage(ws, event.data));
    ws.addEventListener("close", () => {
      if (socket === ws) down();
    });
    ws.addEventListener("error", () => ws.close());
  }

  connect();
  return {
    get live() {
      return live;
    },
    close() {
      closed = true;
      live = false;
      if (retry) clearTimeout(retry);
      socket?.close();
      socket = null;
    },
  };
}
