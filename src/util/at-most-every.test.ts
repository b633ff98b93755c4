import { describe, expect, it } from "vitest";
import { atMostEvery } from "./at-most-every.ts";

describe("atMostEvery", () => {
  it("opens on the first call, then once the interval has passed since it last opened", () => {
    const due = atMostEvery(1_000);
    expect([5_000, 5_999, 6_000, 6_500, 7_000].map(due)).toEqual([true, false, true, false, true]);
  });
});
