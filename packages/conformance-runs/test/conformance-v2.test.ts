import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Check, runConformanceSuite } from '../src/suite.js';
import { startV2ConformanceTarget, V2_TARGETS } from '../src/v2-target.js';

const PKG = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const CLI = join(PKG, 'node_modules/conformance-v02/dist/index.js');
const BASELINE = join(PKG, 'baseline/v2-expected-failures.json');
// Conformance 0.2 needs Node 22 (fs.globSync); the registry's `node` package ships the binary, as .ci/run uses.
const NODE22 = process.env.AUTHSEC_NODE22 ?? 'node@22.23.3';

/** The runs of the suite: what each passes to `conformance server`. */
const RUNS: Record<string, readonly string[]> = {
  '2026-07-28': ['--requirements', '2026-07-28'],
  '2025-11-25': ['--suite', 'all', '--spec-version', '2025-11-25'],
  'http-header-validation': ['--scenario', 'http-header-validation'],
  'http-custom-header-server-validation': ['--scenario', 'http-custom-header-server-validation'],
};

/**
 * Scenarios the suite runs and reports but never scores (its `list --requirements 2026-07-28` calls them the
 * "extension" group: tasks). Shown in the table, never counted against the baseline.
 */
const UNSCORED = /^tasks-/;

async function runSuite(url: string, args: readonly string[]): Promise<Map<string, Check[]>> {
  return runConformanceSuite('npx', ['-y', NODE22, CLI], url, args, { cwd: PKG, timeoutMs: 300_000 });
}

const failed = (checks: Check[]) => checks.some((c) => c.status === 'FAILURE');
const verdict = (checks: Check[] | undefined): string =>
  checks === undefined
    ? 'not run'
    : failed(checks)
      ? 'FAIL'
      : checks.some((c) => c.status === 'WARNING')
        ? 'pass (warnings)'
        : 'pass';

describe.each(V2_TARGETS)('official MCP conformance suite 0.2 on the v2 line, %s (both eras)', (name) => {
  let target: { url: string; close(): Promise<void> };
  const table = new Map<string, Map<string, string>>();
  beforeAll(async () => {
    target = await startV2ConformanceTarget(name);
  });
  afterAll(async () => {
    await target?.close();
    const lines = ['| run | scenario | result |', '| --- | --- | --- |'];
    for (const [run, row] of table)
      for (const [scenario, result] of row) lines.push(`| ${run} | ${scenario} | ${result} |`);
    console.log(`\nCONFORMANCE 0.2 RESULTS (v2 ${name})\n${lines.join('\n')}\n`);
  });

  it.each(Object.keys(RUNS))(
    '%s: no failure outside the committed baseline',
    async (run) => {
      const results = await runSuite(target.url, RUNS[run]!);
      expect(results.size).toBeGreaterThan(0);
      const row = new Map<string, string>();
      for (const [scenario, checks] of [...results].sort(([a], [b]) => a.localeCompare(b))) {
        row.set(
          scenario,
          UNSCORED.test(scenario) ? `${verdict(checks)} (extension, not scored)` : verdict(checks),
        );
        if (UNSCORED.test(scenario)) continue;
        for (const c of checks.filter((check) => check.status === 'FAILURE'))
          console.log(`[v2 ${name} ${run}] ${scenario} ${c.status} ${c.id}: ${c.errorMessage ?? ''}`);
      }
      table.set(run, row);
      const baseline: Record<string, string[]> = existsSync(BASELINE)
        ? JSON.parse(await readFile(BASELINE, 'utf8'))
        : {};
      const expected = new Set(baseline[run] ?? []);
      const failures = [...results]
        .filter(([scenario, checks]) => failed(checks) && !UNSCORED.test(scenario))
        .map(([scenario]) => scenario)
        .sort();
      // The baseline may only shrink: a scenario that passes now is reported so it can be struck off.
      const fixed = [...expected].filter((s) => results.has(s) && !failed(results.get(s)!));
      if (fixed.length > 0)
        console.log(`[v2 ${name} ${run}] now passing, strike from the baseline: ${fixed.join(', ')}`);
      expect(failures.filter((s) => !expected.has(s))).toEqual([]);
      // Bounded: the first run on a fresh machine also fetches Node 22; each suite run is capped at 300 s.
    },
    320_000,
  );
});
