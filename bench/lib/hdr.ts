/**
 * A small HDR-style histogram (log-linear buckets, ~0.1% precision) of
 * integer microseconds. Workers ship their raw bucket counts; the coordinator
 * adds counts and only then computes percentiles: percentiles are never
 * averaged across workers.
 */
const SUB_BITS = 11; // 2048 linear buckets below 2048 us, then 1024 per power of two
const SUB = 1 << SUB_BITS;
const HALF = SUB >> 1;
const MAX_US = 120_000_000; // 120 s; larger values are clamped (and counted)
const SIZE = SUB + 17 * HALF;

export function indexOf(us: number): number {
  if (us < SUB) return us < 0 ? 0 : us | 0;
  const v = Math.min(us, MAX_US) | 0;
  const e = 31 - Math.clz32(v) - (SUB_BITS - 1);
  return SUB + (e - 1) * HALF + ((v >>> e) - HALF);
}

/** Lowest value that maps to bucket i. */
export function lowOf(i: number): number {
  if (i < SUB) return i;
  const e = Math.floor((i - SUB) / HALF) + 1;
  const m = ((i - SUB) % HALF) + HALF;
  return m * 2 ** e;
}
function highOf(i: number): number {
  return i < SUB ? i : lowOf(i + 1) - 1;
}

export type SparseCounts = number[]; // [index, count, index, count, ...]

export class Histogram {
  counts = new Float64Array(SIZE);
  total = 0;
  max = 0;
  min = Infinity;
  clamped = 0;

  recordUs(us: number): void {
    if (us > MAX_US) this.clamped++;
    this.counts[indexOf(us)]! += 1;
    this.total++;
    if (us > this.max) this.max = us;
    if (us < this.min) this.min = us;
  }

  toSparse(): { counts: SparseCounts; max: number; min: number; clamped: number } {
    const out: number[] = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i]! > 0) out.push(i, c[i]!);
    return { counts: out, max: this.max, min: this.min, clamped: this.clamped };
  }

  addSparse(s: { counts: SparseCounts; max: number; min: number; clamped: number }): void {
    for (let j = 0; j < s.counts.length; j += 2) {
      this.counts[s.counts[j]!]! += s.counts[j + 1]!;
      this.total += s.counts[j + 1]!;
    }
    if (s.max > this.max) this.max = s.max;
    if (s.min < this.min) this.min = s.min;
    this.clamped += s.clamped;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.max = 0;
    this.min = Infinity;
    this.clamped = 0;
  }

  /** Value at percentile p (0..100), the highest value equivalent to the bucket (HdrHistogram convention). */
  percentileUs(p: number): number {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      seen += c[i]!;
      if (seen >= rank) return Math.min(highOf(i), this.max);
    }
    return this.max;
  }

  meanUs(): number {
    if (this.total === 0) return NaN;
    let sum = 0;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i]! > 0) sum += c[i]! * ((lowOf(i) + highOf(i)) / 2);
    return sum / this.total;
  }

  /** Summary in milliseconds. */
  summaryMs(): LatencySummary {
    const ms = (us: number) => (Number.isFinite(us) ? Math.round(us) / 1000 : null);
    return {
      count: this.total,
      p50: ms(this.percentileUs(50)),
      p90: ms(this.percentileUs(90)),
      p99: ms(this.percentileUs(99)),
      p999: ms(this.percentileUs(99.9)),
      max: this.total ? ms(this.max) : null,
      mean: ms(this.meanUs()),
    };
  }
}

export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
}
