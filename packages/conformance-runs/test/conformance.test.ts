import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CONFORMANCE_WARNING, openConformanceMode } from '../src/allow-all.js';
import { type Check, runConformanceSuite } from '../src/suite.js';
import { type ConformanceServer, startConformanceTarget, TARGETS } from '../src/targets.js';

const PKG = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const CLI = join(PKG, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const COMPAT = join(PKG, 'scripts/node20-compat.mjs');

/**
 * The 2025-11-25 server scenarios that must pass on every target: lifecycle, ping, every tools scenario (the
 * SEP-1034/SEP-1330 elicitation ones and SEP-1613's JSON Schema 2020-12 included), logging, and the transport
 * scenarios. Not asserted: prompts, resources and completion (not implemented), and `server-sse-polling` (see
 * the README: warnings, the endpoint keeps no event store).
 */
const REQUIRED = [
  'server-initialize',
  'ping',
  'logging-set-level',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'tools-call-mixed-content',
  'tools-call-with-logging',
  'tools-call-error',
  'tools-call-with-progress',
  'tools-call-sampling',
  'tools-call-elicitation',
  'elicitation-sep1034-defaults',
  'elicitation-sep1330-enums',
  'json-schema-2020-12',
  'dns-rebinding-protection',
  'server-sse-multiple-streams',
] as const;

/**
 * Runs the suite's `server` command against `url`: `--suite all` adds the two scenarios the suite keeps in its
 * "pending" list (`json-schema-2020-12`, `server-sse-polling`) to its default "active" suite.
 */
async function runSuite(url: string): Promise<Map<string, Check[]>> {
  return runConformanceSuite(
    process.execPath,
    ['--import', COMPAT, CLI],
    url,
    ['--suite', 'all', '--spec-version', '2025-11-25'],
    {
      cwd: PKG,
      timeoutMs: 240_000,
    },
  );
}

const verdict = (checks: Check[] | undefined): string => {
  if (checks === undefined) return 'not run';
  if (checks.some((c) => c.status === 'FAILURE')) return 'FAIL';
  if (checks.some((c) => c.status === 'WARNING')) return 'pass (warnings)';
  return 'pass';
};

const table = new Map<string, Map<string, string>>();

afterAll(() => {
  const targets = TARGETS.filter((t) => table.has(t));
  const scenarios = [...new Set([...table.values()].flatMap((m) => [...m.keys()]))].sort();
  const lines = [
    `| scenario | ${targets.join(' | ')} |`,
    `| --- | ${targets.map(() => '---').join(' | ')} |`,
    ...scenarios.map(
      (s) => `| ${s} | ${targets.map((t) => table.get(t)?.get(s) ?? 'not run').join(' | ')} |`,
    ),
  ];
  console.log(`\nCONFORMANCE RESULTS\n${lines.join('\n')}\n`);
});

describe('conformance mode', () => {
  it('says loudly, on every start, that authorization is off', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      for (let i = 0; i < 2; i++) void openConformanceMode('http://127.0.0.1/mcp').close();
      const warnings = write.mock.calls.filter(([line]) => String(line).includes(CONFORMANCE_WARNING));
      expect(warnings).toHaveLength(2);
      expect(JSON.parse(String(warnings[0]![0]))).toMatchObject({ level: 'warn', authorization: 'off' });
    } finally {
      write.mockRestore();
    }
  });
});

// The targets run side by side: each is a child process of the suite against a server in this process, and most
// of a run is the suite's own waiting.
describe.concurrent.each(TARGETS)('official MCP conformance suite on %s', (target) => {
  it('passes every lifecycle, ping, logging, tools and transport scenario of 2025-11-25', async () => {
    let server: ConformanceServer | undefined;
    try {
      server = await startConformanceTarget(target);
      const results = await runSuite(server.url);
      expect(results.size).toBeGreaterThan(0);
      const row = new Map<string, string>();
      for (const [scenario, checks] of results) {
        row.set(scenario, verdict(checks));
        for (const c of checks.filter((check) => check.status === 'FAILURE' || check.status === 'WARNING'))
          console.log(`[${target}] ${scenario} ${c.status} ${c.id}: ${c.errorMessage ?? ''}`);
      }
      table.set(target, row);
      const failures = REQUIRED.filter((s) => verdict(results.get(s)) !== 'pass').map(
        (s) =>
          `${s}: ${verdict(results.get(s))} ${(results.get(s) ?? [])
            .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
            .map((c) => `${c.id}: ${c.errorMessage ?? ''}`)
            .join('; ')}`,
      );
      expect(failures).toEqual([]);
    } finally {
      await server?.close();
    }
  });
});
