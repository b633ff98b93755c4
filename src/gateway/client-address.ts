import { isIP } from "node:net";

/**
 * Which reverse proxies the gateway believes about the client's address (`X-Forwarded-For`):
 * a number of hops, or the proxies' addresses and CIDR ranges (`loopback`, `linklocal` and
 * `uniquelocal` name the usual ranges). Absent: no proxy, the socket's address counts.
 */
export type TrustProxy = number | string | readonly string[];

const NAMED_RANGES = new Set(["loopback", "linklocal", "uniquelocal"]);

/**
 * `trustProxy` as Fastify's option: `false` to trust no proxy; for hops, a function trusting
 * the `hops` nearest addresses (Fastify 5 ignores a bare number); for addresses, the list.
 * Throws `TypeError` for anything else (a misconfiguration, found when the gateway is built).
 *
 * @example
 * ```ts
 * fastifyTrustProxy("127.0.0.1, 10.0.0.0/8") // ["127.0.0.1", "10.0.0.0/8"]
 * fastifyTrustProxy(1)                       // (address, i) => i < 1
 * ```
 */
export function fastifyTrustProxy(
  value: TrustProxy | undefined,
): false | string[] | ((address: string, hop: number) => boolean) {
  if (value === undefined || value === 0) return false;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0 || value > 32) {
      throw new TypeError("trustProxy hops must be an integer from 0 to 32");
    }
    return (_address: string, hop: number) => hop < value;
  }
  const entries = (typeof value === "string" ? value.split(",") : [...value]).map((e) => String(e).trim());
  if (entries.length === 0 || entries.some((e) => !isProxyEntry(e))) {
    throw new TypeError(
      "trustProxy must be a number of hops, or addresses and CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8, loopback)",
    );
  }
  return entries;
}

/**
 * A `--trust-proxy` value or setting: digits are a number of hops, anything else a
 * comma-separated list of addresses and ranges. Throws `TypeError` when it is neither.
 *
 * @example
 * ```ts
 * parseTrustProxy("2")                    // 2
 * parseTrustProxy("127.0.0.1,10.0.0.0/8") // "127.0.0.1,10.0.0.0/8"
 * ```
 */
export function parseTrustProxy(value: string | number): number | string {
  const parsed = typeof value === "number" || /^\d{1,2}$/.test(value.trim()) ? Number(value) : value.trim();
  fastifyTrustProxy(parsed);
  return parsed;
}

/** An IP address, an IP/prefix range, or one of the named ranges. */
function isProxyEntry(entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true;
  const [address = "", prefix, extra] = entry.split("/");
  const version = isIP(address);
  if (version === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

/**
 * The key a client's per-address rate limits count under: an IPv4 address as it is (also when
 * written as an IPv4-mapped IPv6 address), an IPv6 address by its /64 — a single site or host
 * is usually given a whole /64, so counting single addresses would let it take 2^64 buckets.
 *
 * @example
 * ```ts
 * rateLimitKey("203.0.113.7")               // "203.0.113.7"
 * rateLimitKey("2001:db8:1:2:aaaa::1")      // "2001:db8:1:2::/64"
 * ```
 */
export function rateLimitKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1] as string;
  if (isIP(address) !== 6) return address;
  const groups = expandIpv6(address.split("%")[0] as string);
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (lower-case hex, `::` and a dotted IPv4 tail expanded). */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase();
  const dotted = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right];
}
