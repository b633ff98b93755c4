import { describe, expect, it } from "vitest";
import { LoadShedder } from "./load-shedding.ts";

/** A shedder on a manual clock: `late(ms)` is a probe tick that came `ms` late. */
function manual(options: { maxInFlight?: number; sustainMs?: number } = {}) {
  let t = 0;
  const shedder = new LoadShedder({
    maxInFlight: options.maxInFlight ?? 100,
    maxEventLoopDelayMs: 50,
    sustainMs: options.sustainMs ?? 1_000,
    now: () => t,
  });
  return {
    shedder,
    late(ms: number) {
      t += 10 + ms;
      shedder.tick();
    },
    idle(ms: number) {
      t += ms;
    },
  };
}

describe("LoadShedder", () => {
  it("sheds past maxInFlight and admits again when one leaves", () => {
    const { shedder } = manual({ maxInFlight: 2 });
    shedder.enter();
    shedder.enter();
    expect(shedder.shouldShed()).toBe(true);
    shedder.leave();
    expect([shedder.shouldShed(), shedder.inFlight]).toEqual([false, 1]);
  });

  it("absorbs a burst: a late loop sheds nothing until it has stayed late for sustainMs", () => {
    const m = manual();
    for (let i = 0; i < 10; i++) m.late(100); // late for 990 ms since the first late tick
    expect(m.shedder.shouldShed()).toBe(false);
    m.late(100); // late for 1,100 ms
    expect(m.shedder.shouldShed()).toBe(true);
  });

  it("while shedding, admits requests that arrive when the loop is on time, and sheds the late ones", () => {
    const m = manual();
    for (let i = 0; i < 11; i++) m.late(100);
    m.late(0); // one tick on time
    expect(m.shedder.shouldShed()).toBe(false);
    m.idle(75); // the next tick is already 65 ms overdue
    expect(m.shedder.shouldShed()).toBe(true);
  });

  it("stops shedding once the loop has been on time for sustainMs", () => {
    const almost = manual();
    for (let i = 0; i < 11; i++) almost.late(100);
    for (let i = 0; i < 99; i++) almost.late(0); // on time for 980 ms
    almost.idle(70);
    expect(almost.shedder.shouldShed()).toBe(true); // still in the overload state, and late now
    const recovered = manual();
    for (let i = 0; i < 11; i++) recovered.late(100);
    for (let i = 0; i < 101; i++) recovered.late(0); // on time for 1,000 ms
    recovered.idle(70);
    expect(recovered.shedder.shouldShed()).toBe(false); // back to normal: one late moment is absorbed
  });

  it("a late run interrupted by one on-time tick starts over", () => {
    const m = manual();
    for (let i = 0; i < 8; i++) m.late(100);
    m.late(0);
    for (let i = 0; i < 8; i++) m.late(100);
    expect(m.shedder.shouldShed()).toBe(false);
  });
});
