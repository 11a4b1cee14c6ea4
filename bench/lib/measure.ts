/**
 * Measurement helpers shared by every benchmark in this package: alternated rounds, medians, a plain-text
 * table and a JSON report.
 *
 * Method: every case is warmed up first, then measured in rounds. Each round samples every case once, in an
 * order rotated from round to round, so that machine noise (another process, a thermal step, a GC of a previous
 * case) lands on all cases alike instead of on whichever ran during it. A case's figure is the median of its
 * rounds; min and max show how stable it was.
 *
 * @packageDocumentation
 */

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A micro-benchmark case. `run(iterations)` performs the operation `iterations` times back to back and returns
 * a value derived from the results: the harness folds it into a sink, so the optimiser cannot remove the work.
 * Sync cases should loop without `await`; async cases `await` each operation in turn, so that the cost of the
 * promise and of the microtask hop is part of what is measured (a caller pays it too).
 */
export interface OpsCase {
  /** Stable key for the JSON report (`cold-authenticate`). */
  readonly id: string;
  /** Label for the table. */
  readonly name: string;
  /** Runs the operation `iterations` times. */
  run(iterations: number): number | Promise<number>;
}

/** Options of {@link measureOps}. */
export interface MeasureOptions {
  /** Rounds per case; the reported figure is their median. Default 7, at least 5. */
  readonly rounds?: number;
  /** Target duration of one sample of one case, ms. Iteration counts are calibrated to it. Default 200. */
  readonly sampleMs?: number;
  /** Warm-up time per case before calibration, ms. Default 300. */
  readonly warmupMs?: number;
  /** Called after each round (progress on stderr, for example). Default: nothing. */
  readonly onRound?: (round: number, rounds: number) => void;
}

/** Summary statistics of one case's samples. */
export interface Summary {
  /** Median of the samples. */
  readonly median: number;
  /** Smallest sample. */
  readonly min: number;
  /** Largest sample. */
  readonly max: number;
  /** `(max - min) / median`: 0.05 means the rounds spread over 5 % of the median. */
  readonly spread: number;
  /** Every sample, in round order. */
  readonly samples: readonly number[];
}

/** The result of one {@link OpsCase}. */
export interface OpsResult {
  readonly id: string;
  readonly name: string;
  /** Operations per sample (calibrated from the warm-up). */
  readonly iterations: number;
  /** Nanoseconds per operation, over the rounds. */
  readonly nsPerOp: Summary;
  /** Operations per second at the median. */
  readonly opsPerSec: number;
}

/** Folds results of measured work so that the optimiser can never prove it unused. Read by {@link sinkValue}. */
let sink = 0;

/** The accumulated sink; print or store it once so the work behind it stays observable. */
export function sinkValue(): number {
  return sink;
}

function consume(value: number): void {
  // `| 0` keeps the sink a small integer whatever the cases return (NaN and Infinity fold to 0).
  sink = (sink + (value | 0)) | 0;
}

/** Collects garbage when the process runs with `--expose-gc`, so one case's garbage is not charged to the next. */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

/** The median of `values` (the mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TypeError('median: no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median, min, max and relative spread of `samples`. */
export function summarize(samples: readonly number[]): Summary {
  const m = median(samples);
  const min = Math.min(...samples);
  const max = Math.max(...samples);
  return { median: m, min, max, spread: m === 0 ? 0 : (max - min) / m, samples: [...samples] };
}

/**
 * The median over rounds of `a[i] / b[i]`, for two cases sampled in the same alternated rounds. Samples of one
 * round were taken close together in time, so slow drift of the machine cancels out of each ratio: steadier
 * than the ratio of the two medians when the machine is shared.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length === 0) throw new TypeError('pairedRatio: sample lists must match');
  return median(a.map((value, i) => value / b[i]!));
}

/**
 * Runs `rounds` rounds; each round calls `sample` once per case, starting at a different case each round
 * (round r starts at case r mod n). Returns the samples per case, in the order of `cases`. This is the building
 * block for any benchmark whose sample is not a loop of operations (an HTTP load run, for example).
 */
export async function alternateRounds<C>(
  cases: readonly C[],
  rounds: number,
  sample: (item: C, round: number) => number | Promise<number>,
  onRound?: (round: number, rounds: number) => void,
): Promise<number[][]> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new TypeError('alternateRounds: rounds must be >= 1');
  const samples = cases.map((): number[] => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < cases.length; k++) {
      const index = (round + k) % cases.length;
      samples[index]!.push(await sample(cases[index]!, round));
    }
    onRound?.(round + 1, rounds);
  }
  return samples;
}

async function timeRun(item: OpsCase, iterations: number): Promise<number> {
  const started = process.hrtime.bigint();
  const value = await item.run(iterations);
  const elapsed = Number(process.hrtime.bigint() - started);
  consume(value);
  return elapsed;
}

// Doubles the batch until it takes a measurable time, keeps running until the warm-up time is spent, then
// scales the batch to the target sample duration.
async function warmUpAndCalibrate(item: OpsCase, warmupMs: number, sampleMs: number): Promise<number> {
  const warmupNs = warmupMs * 1e6;
  let iterations = 1;
  let spent = 0;
  let nsPerOp = Number.POSITIVE_INFINITY;
  while (spent < warmupNs) {
    const elapsed = await timeRun(item, iterations);
    spent += elapsed;
    if (elapsed >= 5e6) nsPerOp = Math.min(nsPerOp, elapsed / iterations);
    if (elapsed < 20e6) iterations *= 2;
  }
  if (!Number.isFinite(nsPerOp)) nsPerOp = spent / iterations;
  return Math.max(1, Math.round((sampleMs * 1e6) / nsPerOp));
}

/**
 * Warms up every case, calibrates its iteration count to `sampleMs`, then measures all of them in alternated
 * rounds (see {@link alternateRounds}), collecting garbage before each sample. Results keep the order of `cases`.
 */
export async function measureOps(
  cases: readonly OpsCase[],
  options: MeasureOptions = {},
): Promise<OpsResult[]> {
  const rounds = options.rounds ?? 7;
  const sampleMs = options.sampleMs ?? 200;
  const warmupMs = options.warmupMs ?? 300;
  if (!Number.isInteger(rounds) || rounds < 5)
    throw new TypeError('measureOps: rounds must be an integer >= 5');
  const iterations: number[] = [];
  for (const item of cases) {
    collectGarbage();
    iterations.push(await warmUpAndCalibrate(item, warmupMs, sampleMs));
  }
  const indexed = cases.map((item, index) => ({ item, index }));
  const samples = await alternateRounds(
    indexed,
    rounds,
    async ({ item, index }) => {
      collectGarbage();
      const n = iterations[index]!;
      return (await timeRun(item, n)) / n;
    },
    options.onRound,
  );
  return cases.map((item, index) => {
    const nsPerOp = summarize(samples[index]!);
    return {
      id: item.id,
      name: item.name,
      iterations: iterations[index]!,
      nsPerOp,
      opsPerSec: 1e9 / nsPerOp.median,
    };
  });
}

/** One column of {@link formatTable}. */
export interface Column<R> {
  /** Header text. */
  readonly header: string;
  /** Cell text for a row. */
  readonly cell: (row: R) => string;
  /** Alignment. Default `'right'` (numbers). */
  readonly align?: 'left' | 'right';
}

/** Renders rows as a plain-text table with a header rule, padded to the widest cell of each column. */
export function formatTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((row) => columns.map((c) => c.cell(row)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]!.align === 'left' ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.header)),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map(line),
  ].join('\n');
}

/** Formats a number with thousands separators and `digits` decimals (`1,234.5`). */
export function formatNumber(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Formats a ratio as `1.234x`, with three significant digits below 0.1 (`0.00481x`). */
export function formatRatio(ratio: number): string {
  return `${ratio >= 0.1 ? ratio.toFixed(3) : ratio.toPrecision(3)}x`;
}

/** Formats nanoseconds as microseconds with a precision that suits the magnitude. */
export function formatMicros(ns: number): string {
  const us = ns / 1000;
  return formatNumber(us, us < 1 ? 3 : us < 100 ? 2 : 1);
}

/** Where the benchmark runs: stored with the results so that numbers are never compared across machines blindly. */
export function environment(): Record<string, unknown> {
  const cpu = cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    cpuModel: cpu[0]?.model ?? 'unknown',
    cpuCount: cpu.length,
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
}

/**
 * The nearest directory at or above `moduleUrl` that holds a `package.json`: this package's root, whether the
 * module runs from source or compiled into `dist/`.
 */
export function packageRoot(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No package.json above ${moduleUrl}`);
    dir = parent;
  }
  return dir;
}

/** Writes `data` as indented JSON to `path`, creating its directory. */
export function writeJson(path: string, data: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
}

/** The integer environment variable `name` (at least `min`), or `fallback` when unset or empty. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new TypeError(`${name} must be ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}`);
  return value;
}
