/**
 * Latency and throughput of repeated calls: one caller at a time (close to the server's own time
 * per request) or N callers in parallel (requests per second), with nearest-rank percentiles.
 */

export interface LatencyStats {
  requests: number;
  errors: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  rps: number;
  /** The first error's text, so a failing case says why instead of showing fast zeros. */
  firstError?: string;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

function summarise(latencies: number[], errors: number, wallMs: number, firstError?: string): LatencyStats {
  const sorted = [...latencies].sort((a, b) => a - b);
  const total = latencies.length + errors;
  return {
    requests: total,
    errors,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    mean: round(sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length)),
    rps: round((total / wallMs) * 1000, 1),
    ...(firstError ? { firstError } : {}),
  };
}

/**
 * Runs `call` `total` times from `clients` concurrent callers. A warm-up call per caller comes
 * first and is not counted, so connection set-up and first-use compilation stay out of the numbers.
 */
export async function measure(
  call: (i: number) => Promise<unknown>,
  opts: { clients: number; total: number; warmup?: boolean; maxSeconds?: number },
): Promise<LatencyStats> {
  if (opts.warmup !== false)
    await Promise.all(Array.from({ length: opts.clients }, (_, i) => call(i).catch(() => undefined)));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const started = performance.now();
  // A slow case stops early rather than stretching the run; its statistics cover what it did.
  const deadline = started + (opts.maxSeconds ?? Number.POSITIVE_INFINITY) * 1000;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= opts.total || performance.now() > deadline) return;
      const t0 = performance.now();
      try {
        await call(i);
        latencies.push(performance.now() - t0);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, worker));
  return summarise(latencies, errors, performance.now() - started, firstError);
}

/**
 * The same load as a throughput case, for `seconds`, not counted: the JIT optimises the hot path
 * and the garbage of the previous case is collected before the figures start, as load generators
 * warm up. Without it a cheap call measured first after a big one runs at half its speed.
 */
export async function warmUp(
  call: (i: number) => Promise<unknown>,
  clients: number,
  seconds: number,
): Promise<void> {
  const until = performance.now() + seconds * 1000;
  let i = 0;
  const caller = async () => {
    while (performance.now() < until) await call(i++).catch(() => undefined);
  };
  await Promise.all(Array.from({ length: clients }, caller));
}

/** Median wall time of `runs` calls of a synchronous or asynchronous function, in ms. */
export async function medianMs(runs: number, fn: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return round(percentile(times, 50), 3);
}

export { round };
