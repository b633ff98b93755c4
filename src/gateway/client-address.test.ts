import { describe, expect, it } from "vitest";
import { fastifyTrustProxy, parseTrustProxy, rateLimitKey } from "./client-address.ts";

describe("rateLimitKey", () => {
  it("keys an IPv4 client by its address, also when written IPv4-mapped", () => {
    expect(rateLimitKey("203.0.113.7")).toBe("203.0.113.7");
    expect(rateLimitKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(rateLimitKey("203.0.113.8")).not.toBe(rateLimitKey("203.0.113.7"));
  });

  it("keys IPv6 clients by their /64: two addresses in one /64 share a bucket, whatever their spelling", () => {
    const a = rateLimitKey("2001:db8:1:2:aaaa:bbbb:cccc:1");
    const b = rateLimitKey("2001:0DB8:0001:0002::2");
    expect(a).toBe("2001:db8:1:2::/64");
    expect(b).toBe(a);
    expect(rateLimitKey("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(rateLimitKey("::1")).toBe("0:0:0:0::/64");
    expect(rateLimitKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(rateLimitKey("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
  });
});

describe("trustProxy", () => {
  it("trusts no proxy by default or with 0 hops", () => {
    expect(fastifyTrustProxy(undefined)).toBe(false);
    expect(fastifyTrustProxy(0)).toBe(false);
  });

  it("passes addresses and ranges as a list, and hops as a function of the hop", () => {
    expect(fastifyTrustProxy("127.0.0.1, 10.0.0.0/8,::1, fd00::/8, loopback")).toEqual([
      "127.0.0.1",
      "10.0.0.0/8",
      "::1",
      "fd00::/8",
      "loopback",
    ]);
    const trust = fastifyTrustProxy(2) as (address: string, hop: number) => boolean;
    expect([0, 1, 2].map((hop) => trust("198.51.100.1", hop))).toEqual([true, true, false]);
  });

  it.each([["10.0.0.0/33"], ["not-an-ip"], ["127.0.0.1/8/1"], [""], ["::1/129"], [-1], [1.5], [33]])(
    "refuses %s with a TypeError",
    (value) => {
      expect(() => fastifyTrustProxy(value as string | number)).toThrow(TypeError);
    },
  );

  it("parses --trust-proxy: digits are hops, anything else a list", () => {
    expect(parseTrustProxy("1")).toBe(1);
    expect(parseTrustProxy(" 127.0.0.1,10.0.0.0/8 ")).toBe("127.0.0.1,10.0.0.0/8");
    expect(() => parseTrustProxy("everyone")).toThrow(TypeError);
  });
});
