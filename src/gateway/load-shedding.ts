/** Timer period of the event-loop probe. */
const TICK_MS = 10;

export interface LoadShedderOptions {
  /** Requests worked on at once before new ones are shed. */
  maxInFlight: number;
  /** Event-loop delay that counts as late. */
  maxEventLoopDelayMs: number;
  /**
   * How long the loop must stay late before shedding starts, and on time before it stops
   * (default 1000 ms): a burst or a pause is absorbed, a standing overload is shed.
   */
  sustainMs?: number;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  now?: () => number;
}

/**
 * Decides which requests to refuse under overload. Two signals: requests in flight (a hard
 * bound), and the event loop's delay, probed by a 10 ms timer. Under overload the queue forms
 * before the application sees a request (in socket buffers), where no in-flight count can see
 * it; a loop that stays late is the sign of that queue. Once the loop has been late for
 * `sustainMs`, requests arriving while it is late are shed, until it has been on time for
 * `sustainMs` again.
 *
 * @example
 * ```ts
 * const shedder = new LoadShedder({ maxInFlight: 256, maxEventLoopDelayMs: 50 });
 * shedder.start();
 * if (shedder.shouldShed()) reply503(); else { shedder.enter(); …; shedder.leave(); }
 * ```
 */
export class LoadShedder {
  readonly #maxInFlight: number;
  readonly #maxDelay: number;
  readonly #sustain: number;
  readonly #now: () => number;
  #inFlight = 0;
  #lastTick: number;
  #delay = 0;
  #lateSince: number | null = null;
  #onTimeSince: number | null = null;
  #shedding = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: LoadShedderOptions) {
    this.#maxInFlight = options.maxInFlight;
    this.#maxDelay = options.maxEventLoopDelayMs;
    this.#sustain = options.sustainMs ?? 1_000;
    this.#now = options.now ?? (() => performance.now());
    this.#lastTick = this.#now();
  }

  /** Starts the event-loop probe (a 10 ms timer that never keeps the process alive). */
  start(): void {
    this.#timer ??= setInterval(() => this.tick(), TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One probe: how late this tick came, and whether the overload state changes. */
  tick(): void {
    const now = this.#now();
    this.#delay = Math.max(0, now - this.#lastTick - TICK_MS);
    this.#lastTick = now;
    if (this.#delay > this.#maxDelay) {
      this.#onTimeSince = null;
      this.#lateSince ??= now;
      if (now - this.#lateSince >= this.#sustain) this.#shedding = true;
    } else {
      this.#lateSince = null;
      this.#onTimeSince ??= now;
      if (now - this.#onTimeSince >= this.#sustain) this.#shedding = false;
    }
  }

  /** Whether a request arriving now should be refused. */
  shouldShed(): boolean {
    if (this.#inFlight >= this.#maxInFlight) return true;
    if (!this.#shedding) return false;
    const pending = this.#now() - this.#lastTick - TICK_MS; // how late the next tick already is
    return Math.max(this.#delay, pending) > this.#maxDelay;
  }

  enter(): void {
    this.#inFlight++;
  }

  leave(): void {
    this.#inFlight--;
  }

  get inFlight(): number {
    return this.#inFlight;
  }
}
