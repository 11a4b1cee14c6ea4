import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConformanceServer, startConformanceServer } from '../src/allow-all.js';

const PKG = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const CLI = join(PKG, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const COMPAT = join(PKG, 'scripts/node20-compat.mjs');

/** The 2025-11-25 server scenarios that must pass: lifecycle, ping and every tools scenario. */
const REQUIRED = [
  'server-initialize',
  'ping',
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
] as const;

interface Check {
  readonly id: string;
  readonly status: string;
  readonly errorMessage?: string;
}

async function runSuite(url: string): Promise<Map<string, Check[]>> {
  const out = await mkdtemp(join(tmpdir(), 'authsec-conformance-'));
  try {
    await new Promise<void>((done) => {
      execFile(
        process.execPath,
        ['--import', COMPAT, CLI, 'server', '--url', url, '--spec-version', '2025-11-25', '-o', out],
        { cwd: PKG, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
        // A non-zero exit only means some scenario failed; the per-scenario files say which.
        () => done(),
      );
    });
    const results = new Map<string, Check[]>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.name === 'checks.json') {
          // Result directories are named `server-<scenario>-<ISO timestamp>`.
          const scenario = dir
            .slice(out.length + 1)
            .split('/')[0]!
            .replace(/^server-/, '')
            .replace(/-\d{4}-\d{2}-\d{2}T[\dZ-]+$/, '');
          results.set(scenario, JSON.parse(await readFile(path, 'utf8')) as Check[]);
        }
      }
    };
    await walk(out);
    return results;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

const verdict = (checks: Check[] | undefined): string => {
  if (checks === undefined) return 'not run';
  if (checks.some((c) => c.status === 'FAILURE')) return 'FAIL';
  if (checks.some((c) => c.status === 'WARNING')) return 'pass (warnings)';
  return 'pass';
};

const table = new Map<string, Map<string, string>>();

afterAll(() => {
  const adapters = [...table.keys()];
  const scenarios = [...new Set([...table.values()].flatMap((m) => [...m.keys()]))].sort();
  const lines = [
    `| scenario | ${adapters.join(' | ')} |`,
    `| --- | ${adapters.map(() => '---').join(' | ')} |`,
    ...scenarios.map(
      (s) => `| ${s} | ${adapters.map((a) => table.get(a)?.get(s) ?? 'not run').join(' | ')} |`,
    ),
  ];
  console.log(`\nCONFORMANCE RESULTS\n${lines.join('\n')}\n`);
});

describe.each(['express', 'fastify', 'node-http'] as const)(
  'official MCP conformance suite on %s',
  (adapter) => {
    it('passes every lifecycle, ping and tools scenario of 2025-11-25', async () => {
      let server: ConformanceServer | undefined;
      try {
        server = await startConformanceServer(adapter);
        const results = await runSuite(server.url);
        expect(results.size).toBeGreaterThan(0);
        const row = new Map<string, string>();
        for (const [scenario, checks] of results) {
          row.set(scenario, verdict(checks));
          for (const c of checks.filter((check) => check.status === 'FAILURE' || check.status === 'WARNING'))
            console.log(`[${adapter}] ${scenario} ${c.status} ${c.id}: ${c.errorMessage ?? ''}`);
        }
        table.set(adapter, row);
        const failures = REQUIRED.filter((s) => !verdict(results.get(s)).startsWith('pass')).map(
          (s) =>
            `${s}: ${verdict(results.get(s))} ${(results.get(s) ?? [])
              .filter((c) => c.status === 'FAILURE')
              .map((c) => `${c.id}: ${c.errorMessage ?? ''}`)
              .join('; ')}`,
        );
        expect(failures).toEqual([]);
      } finally {
        await server?.close();
      }
    });
  },
);
