import { describe, expect, it } from "vitest";
import { ChangeClock, LruCache, SegmentedCache } from "./lru.ts";

const filled = (n: number, maxEntries: number, deleted: [string, number][] = []) => {
  const cache = new LruCache<string, number>({ maxEntries, onDelete: (k, v) => deleted.push([k, v]) });
  for (let i = 0; i < n; i++) cache.set(`k${i}`, i);
  return cache;
};

describe("LruCache", () => {
  it("an insertion past the bound evicts exactly the least recently used entry", () => {
    const deleted: [string, number][] = [];
    const cache = filled(3, 3, deleted);
    cache.set("k3", 3);
    expect([...cache.keys()]).toEqual(["k1", "k2", "k3"]);
    expect(deleted).toEqual([["k0", 0]]);
    expect(cache.size).toBe(3);
  });

  it("get and set count as uses; peek, has and iteration do not", () => {
    const deleted: [string, number][] = [];
    const cache = filled(3, 3, deleted);
    expect(cache.get("k0")).toBe(0); // k1 is now the least recently used
    expect(cache.peek("k1")).toBe(1);
    expect(cache.has("k1")).toBe(true);
    cache.set("k2", 22); // a replacement: a use, not a deletion
    expect(deleted).toEqual([]);
    cache.set("k3", 3);
    expect(deleted).toEqual([["k1", 1]]);
    expect([...cache.entries()]).toEqual([
      ["k0", 0],
      ["k2", 22],
      ["k3", 3],
    ]);
  });

  it("reports every entry that leaves through onDelete: deleted, deleted by a match, cleared", () => {
    const deleted: [string, number][] = [];
    const cache = filled(5, 10, deleted);
    expect(cache.delete("k1")).toBe(true);
    expect(cache.delete("k1")).toBe(false);
    expect(cache.deleteWhere((_k, v) => v % 2 === 0)).toBe(3);
    expect(deleted).toEqual([
      ["k1", 1],
      ["k0", 0],
      ["k2", 2],
      ["k4", 4],
    ]);
    cache.clear();
    expect(deleted.at(-1)).toEqual(["k3", 3]);
    expect(cache.size).toBe(0);
  });

  it("stays at its bound however many keys pass through", () => {
    const cache = filled(10_000, 100);
    expect(cache.size).toBe(100);
    expect(cache.peek("k9899")).toBeUndefined();
    expect(cache.peek("k9900")).toBe(9900);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses maxEntries %s with a TypeError", (maxEntries) => {
    expect(() => new LruCache({ maxEntries })).toThrow(TypeError);
  });
});

describe("SegmentedCache", () => {
  const segmented = (deleted: [string, number][] = []) =>
    new SegmentedCache<string, number>({
      maxEntries: 3,
      maxUnauthenticatedEntries: 2,
      onDelete: (k, v) => deleted.push([k, v]),
    });

  it("unauthenticated entries past their bound evict exactly the least recently used of their own kind", () => {
    const deleted: [string, number][] = [];
    const cache = segmented(deleted);
    for (const i of [0, 1, 2]) cache.set(`a${i}`, i, true);
    for (const i of [0, 1, 2, 3, 4]) cache.set(`u${i}`, 10 + i, false);
    expect(cache.sizes).toEqual({ main: 3, unauthenticated: 2 });
    expect(deleted).toEqual([
      ["u0", 10],
      ["u1", 11],
      ["u2", 12],
    ]);
    expect([cache.peek("a0"), cache.peek("u3"), cache.peek("u2")]).toEqual([0, 13, undefined]);
  });

  it("the main segment past its bound evicts exactly its least recently used; a get counts as a use", () => {
    const deleted: [string, number][] = [];
    const cache = segmented(deleted);
    for (const i of [0, 1, 2]) cache.set(`a${i}`, i, true);
    expect(cache.get("a0", true)).toBe(0);
    cache.set("a3", 3, true);
    expect(deleted).toEqual([["a1", 1]]);
    expect(cache.sizes).toEqual({ main: 3, unauthenticated: 0 });
  });

  it("moves an entry to the main segment on an authenticated use or promote, without reporting it deleted", () => {
    const deleted: [string, number][] = [];
    const cache = segmented(deleted);
    cache.set("u0", 0, false);
    cache.set("u1", 1, false);
    expect(cache.get("u0", false)).toBe(0);
    expect(cache.authenticated("u0")).toBe(false);
    expect(cache.get("u0", true)).toBe(0);
    cache.promote("u1");
    cache.promote("absent");
    expect([cache.authenticated("u0"), cache.authenticated("u1")]).toEqual([true, true]);
    expect(cache.sizes).toEqual({ main: 2, unauthenticated: 0 });
    expect(deleted).toEqual([]);
  });

  it("skips an entry `usable` refuses; delete, deleteWhere and clear reach both segments", () => {
    const deleted: [string, number][] = [];
    const cache = segmented(deleted);
    cache.set("a0", 0, true);
    cache.set("u0", 1, false);
    cache.set("u1", 2, false);
    expect(cache.get("a0", true, (v) => v > 0)).toBeUndefined();
    expect(cache.delete("u0")).toBe(true);
    expect(cache.delete("u0")).toBe(false);
    expect(cache.deleteWhere((_k, v) => v === 2)).toBe(1);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(deleted).toEqual([
      ["u0", 1],
      ["u1", 2],
      ["a0", 0],
    ]);
  });
});

describe("ChangeClock", () => {
  it("answers whether a key changed since a start, in at most maxKeys keys", () => {
    const clock = new ChangeClock(2);
    const started = clock.start();
    clock.touch("a");
    expect([clock.changedSince("a", started), clock.changedSince("b", started)]).toEqual([true, false]);
    const later = clock.start();
    expect(clock.changedSince("a", later)).toBe(false);
    clock.touch("b");
    clock.touch("c"); // "a" is forgotten: it changed at 1
    expect(clock.size).toBe(2);
    // a forgotten key answers with the latest forgotten change: raced if that is after the start
    expect([clock.changedSince("a", started), clock.changedSince("a", later)]).toEqual([true, false]);
    expect(clock.changedSince("zzz", later)).toBe(false);
    clock.touch("d"); // "b" forgotten, at 2
    expect(clock.changedSince("zzz", later)).toBe(true);
  });
});
