/**
 * `tools/call` throughput over stateful Streamable HTTP: the same `hello` tool served by a plain MCP SDK server,
 * by the SDK's `requireBearerAuth` with a jose verifier (Express), and through `@authsec/mcp` (bearer token
 * verified on every request, the call authorized, the caller's identity handed to the tool): on `node:http`
 * without and with an audit sink, and through `@authsec/express` and `@authsec/fastify` with the verified-token
 * cache on and off, in one run. Targets: ours >= 0.9x the plain server and >= 1.2x the SDK's bearer middleware. Each server runs in a child process of its
 * own; autocannon drives it from this process with 10 connections on 127.0.0.1, one MCP session per server.
 * Runs alternate between the servers; the table shows medians. Writes `results/mcp.json` and exits 0 whether
 * or not the target is met: benchmarks report, they do not gate CI.
 *
 * Tuning (environment): `BENCH_MCP_ROUNDS` (default 5, at least 5), `BENCH_MCP_SECONDS` (one run, default 3),
 * `BENCH_MCP_WARMUP_SECONDS` (per server, default 2), `BENCH_MCP_CONNECTIONS` (default 10).
 */

import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { nextMessage } from './lib/children.js';
import { checkHelloCall, helloCall, mcpHeaders, openSession } from './lib/mcp-client.js';
import type { BenchServerKind, ChildMessage } from './lib/mcp-servers.js';
import {
  alternateRounds,
  envInt,
  environment,
  formatNumber,
  formatRatio,
  formatTable,
  packageRoot,
  pairedRatio,
  type Summary,
  summarize,
  writeJson,
} from './lib/measure.js';

/** Target: our throughput at least this fraction of the plain SDK server's. */
const TARGET_RATIO = 0.9;
/** Target: our throughput at least this multiple of the SDK's own bearer middleware (`requireBearerAuth`). */
const TARGET_BEARER_RATIO = 1.2;

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** One server under test: its child process, session and the headers of every `tools/call`. */
interface Target {
  readonly id: BenchServerKind;
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly hello: string;
  headers: Record<string, string>;
  contentType: string;
  /** 2xx responses autocannon counted, warm-up included. */
  answered: number;
  /** The server process's CPU time and tool runs over the measured rounds (after warm-up). */
  cpuMicros: number;
  calls: number;
  readonly runs: autocannon.Result[];
}

const CASES: readonly { id: Target['id']; name: string }[] = [
  { id: 'plain', name: 'plain SDK (McpServer)' },
  { id: 'plain-lowlevel', name: 'plain SDK (low-level Server)' },
  { id: 'plain-express', name: 'plain SDK (McpServer) on Express' },
  { id: 'plain-fastify', name: 'plain SDK (McpServer) on Fastify' },
  { id: 'sdk-bearer', name: 'SDK requireBearerAuth + jose (Express)' },
  { id: 'authsec', name: '@authsec/mcp node:http, cache on' },
  { id: 'authsec-audit', name: '@authsec/mcp node:http, cache on, audit' },
  { id: 'authsec-express', name: '@authsec/express, cache on' },
  { id: 'authsec-express-nocache', name: '@authsec/express, cache off' },
  { id: 'authsec-express-listener', name: '@authsec/express listener, cache on' },
  { id: 'authsec-fastify', name: '@authsec/fastify, cache on' },
  { id: 'authsec-fastify-nocache', name: '@authsec/fastify, cache off' },
];

/**
 * `BENCH_MCP_CASES` (comma-separated ids) narrows a run to some cases, e.g. while working on one adapter; the
 * references (`plain`, `plain-lowlevel`, `sdk-bearer`) are always kept, since every ratio is taken against them.
 */
function selectedCases(): typeof CASES {
  const raw = process.env.BENCH_MCP_CASES?.trim();
  if (!raw) return CASES;
  const wanted = new Set(raw.split(',').map((id) => id.trim()));
  const unknown = [...wanted].filter((id) => !CASES.some((c) => c.id === id));
  if (unknown.length > 0)
    throw new TypeError(
      `BENCH_MCP_CASES: unknown case ${unknown.join(', ')} (known: ${CASES.map((c) => c.id).join(', ')})`,
    );
  return CASES.filter((c) => !c.id.startsWith('authsec') || wanted.has(c.id));
}

async function startTarget(id: Target['id'], name: string): Promise<Target> {
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'lib', 'mcp-servers.js');
  // BENCH_MCP_SERVER_ARGS passes Node flags to the servers (e.g. `--cpu-prof` to profile them).
  const execArgv = process.env.BENCH_MCP_SERVER_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = fork(script, [id], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const ready = await nextMessage<ChildMessage, 'ready'>(child, 'ready');
  const auth: Record<string, string> = ready.token ? { authorization: `Bearer ${ready.token}` } : {};
  const sessionId = await openSession(ready.url, auth);
  return {
    id,
    name,
    child,
    url: ready.url,
    hello: ready.hello,
    headers: mcpHeaders({ ...auth, 'mcp-session-id': sessionId }),
    contentType: '',
    answered: 0,
    cpuMicros: 0,
    calls: 0,
    runs: [],
  };
}

// JSON-RPC ids must be unique among the requests in flight on one session.
let nextId = 1;

async function load(target: Target, seconds: number, connections: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers: target.headers,
    connections,
    duration: seconds,
    requests: [
      {
        setupRequest: (request) => ({ ...request, body: helloCall(nextId++) }),
      },
    ],
  });
  target.answered += result['2xx'];
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0 || result['2xx'] === 0) {
    throw new Error(
      `${target.name}: ${result['2xx']} answers, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
  return result;
}

async function main(): Promise<void> {
  const rounds = envInt('BENCH_MCP_ROUNDS', 5, 5);
  const seconds = envInt('BENCH_MCP_SECONDS', 3);
  const warmupSeconds = envInt('BENCH_MCP_WARMUP_SECONDS', 2);
  const connections = envInt('BENCH_MCP_CONNECTIONS', 10);

  const targets: Target[] = [];
  try {
    for (const { id, name } of selectedCases()) targets.push(await startTarget(id, name));

    // Check that every server answers the call with a successful result before timing it.
    for (const target of targets) {
      target.contentType = await checkHelloCall(target.url, target.headers, target.hello, nextId++);
    }
    for (const ours of targets.filter((t) => t.id.startsWith('authsec') || t.id === 'sdk-bearer')) {
      const refused = await fetch(ours.url, {
        method: 'POST',
        headers: { ...ours.headers, authorization: 'Bearer not-a-token' },
        body: helloCall(nextId++),
      });
      await refused.arrayBuffer();
      if (refused.status !== 401) {
        throw new Error(`${ours.name}: a bad token was answered ${refused.status}, expected 401`);
      }
    }

    progress(
      `MCP tools/call over Streamable HTTP: ${connections} connections, ${rounds} rounds of ${seconds} s per server, warm-up ${warmupSeconds} s`,
    );
    for (const target of targets) {
      progress(`  warm-up: ${target.name}`);
      await load(target, warmupSeconds, connections);
    }
    const before = new Map<Target, { cpu: number; calls: number }>();
    for (const target of targets) {
      target.child.send({ type: 'stats' });
      const stats = await nextMessage<ChildMessage, 'stats'>(target.child, 'stats');
      before.set(target, { cpu: stats.cpuMicros, calls: stats.calls });
    }
    const samples = await alternateRounds(
      targets,
      rounds,
      async (target) => {
        const result = await load(target, seconds, connections);
        target.runs.push(result);
        return result.requests.average;
      },
      (round, total) => progress(`  round ${round}/${total}`),
    );

    // Every 2xx answer was a real call of the tool; ours also audited each one as allowed.
    for (const target of targets) {
      target.contentType = await checkHelloCall(target.url, target.headers, target.hello, nextId++);
      target.child.send({ type: 'stats' });
      const stats = await nextMessage<ChildMessage, 'stats'>(target.child, 'stats');
      target.cpuMicros = stats.cpuMicros - before.get(target)!.cpu;
      target.calls = stats.calls - before.get(target)!.calls;
      if (stats.calls < target.answered) {
        throw new Error(`${target.name}: ${target.answered} answers but the tool ran ${stats.calls} times`);
      }
      // With the sink: one `tool.call` `allow` event per run of the tool (and one `authenticate` `deny` for the
      // bad token of the checks). Without: no event at all.
      const events = Object.values(stats.audit).reduce((sum, n) => sum + n, 0);
      const audited =
        target.id === 'authsec-audit' ? (stats.audit['tool.call:allow'] ?? 0) === stats.calls : events === 0;
      if (!audited) {
        throw new Error(
          `${target.name}: ${stats.calls} calls but ${JSON.stringify(stats.audit)} audit events`,
        );
      }
    }

    report(targets, samples, { rounds, seconds, warmupSeconds, connections });
  } finally {
    for (const target of targets) if (target.child.connected) target.child.disconnect();
  }
}

interface Config {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
}

function report(targets: Target[], samples: number[][], config: Config): void {
  const rows = targets.map((target, i) => {
    const reqs = summarize(samples[i]!);
    const latencyMean = summarize(target.runs.map((r) => r.latency.average));
    const latencyP99 = summarize(target.runs.map((r) => r.latency.p99));
    return { target, reqs, latencyMean, latencyP99, samples: samples[i]! };
  });
  const plain = rows.find((r) => r.target.id === 'plain')!;
  const lowLevel = rows.find((r) => r.target.id === 'plain-lowlevel')!;
  const bearer = rows.find((r) => r.target.id === 'sdk-bearer')!;
  const ratio = (a: Summary, b: Summary) => a.median / b.median;
  const table = formatTable(
    [
      { header: 'case', cell: (r: (typeof rows)[number]) => r.target.name, align: 'left' },
      { header: 'req/s (median)', cell: (r) => formatNumber(r.reqs.median) },
      { header: 'min–max req/s', cell: (r) => `${formatNumber(r.reqs.min)}–${formatNumber(r.reqs.max)}` },
      { header: 'spread', cell: (r) => `${(r.reqs.spread * 100).toFixed(1)}%` },
      { header: 'mean ms', cell: (r) => r.latencyMean.median.toFixed(2) },
      { header: 'p99 ms', cell: (r) => formatNumber(r.latencyP99.median) },
      // The server's own CPU per call: not blurred by the load generator sharing the cores.
      {
        header: 'server CPU µs/call',
        cell: (r) => (r.target.cpuMicros / Math.max(1, r.target.calls)).toFixed(1),
      },
      { header: 'vs plain', cell: (r) => formatRatio(ratio(r.reqs, plain.reqs)) },
      { header: 'vs sdk-bearer', cell: (r) => formatRatio(ratio(r.reqs, bearer.reqs)) },
    ],
    rows,
  );
  // The plain McpServer on the same framework: what the framework itself costs is not ours to remove.
  const sameFramework = (id: string) =>
    rows.find(
      (r) =>
        r.target.id ===
        (id.startsWith('authsec-express')
          ? 'plain-express'
          : id.startsWith('authsec-fastify')
            ? 'plain-fastify'
            : 'plain'),
    ) ?? plain;
  const ours = rows
    .filter((r) => r.target.id.startsWith('authsec'))
    .map((r) => ({
      id: r.target.id,
      name: r.target.name,
      oursOverPlain: ratio(r.reqs, plain.reqs),
      oursOverPlainPaired: pairedRatio(r.samples, plain.samples),
      sameFramework: sameFramework(r.target.id).target.name,
      oursOverSameFramework: ratio(r.reqs, sameFramework(r.target.id).reqs),
      oursOverSameFrameworkPaired: pairedRatio(r.samples, sameFramework(r.target.id).samples),
      oursOverLowLevel: ratio(r.reqs, lowLevel.reqs),
      oursOverLowLevelPaired: pairedRatio(r.samples, lowLevel.samples),
      oursOverSdkBearer: ratio(r.reqs, bearer.reqs),
      oursOverSdkBearerPaired: pairedRatio(r.samples, bearer.samples),
    }));
  const contentTypes = [...new Set(targets.map((t) => t.contentType))].join(', ');
  const width = Math.max(...ours.map((o) => o.name.length));

  const out = process.stdout;
  out.write('\nMCP tools/call throughput, stateful Streamable HTTP\n');
  out.write(
    `${config.connections} connections, ${config.rounds} alternated rounds of ${config.seconds} s per server, one session each, responses ${contentTypes}\n\n`,
  );
  out.write(`${table}\n\n`);
  out.write('ratios (ratio of medians; in parentheses, the median of the per-round ratios):\n');
  for (const o of ours) {
    out.write(
      `  ${o.name.padEnd(width)}  / plain McpServer ${formatRatio(o.oursOverPlain)} (${formatRatio(o.oursOverPlainPaired)})` +
        `   / sdk-bearer ${formatRatio(o.oursOverSdkBearer)} (${formatRatio(o.oursOverSdkBearerPaired)})` +
        `   / low-level Server ${formatRatio(o.oursOverLowLevel)} (${formatRatio(o.oursOverLowLevelPaired)})` +
        `   / plain on its framework ${formatRatio(o.oursOverSameFramework)} (${formatRatio(o.oursOverSameFrameworkPaired)})\n`,
    );
  }
  out.write(
    `targets (ratio of medians; ours >= ${TARGET_RATIO}x plain McpServer, >= ${TARGET_BEARER_RATIO}x sdk-bearer):\n`,
  );
  for (const o of ours) {
    const mark = (ok: boolean) => (ok ? 'PASS' : 'MISS');
    out.write(
      `  ${o.name.padEnd(width)}  ${mark(o.oursOverPlain >= TARGET_RATIO)} / plain ${formatRatio(o.oursOverPlain)}` +
        `   ${mark(o.oursOverSdkBearer >= TARGET_BEARER_RATIO)} / sdk-bearer ${formatRatio(o.oursOverSdkBearer)}\n`,
    );
  }

  const output = join(packageRoot(import.meta.url), 'results', 'mcp.json');
  writeJson(output, {
    generatedAt: new Date().toISOString(),
    environment: environment(),
    config: {
      ...config,
      transport: 'streamable-http (stateful)',
      host: '127.0.0.1',
      loadGenerator: 'autocannon 9.0.0',
    },
    responseContentTypes: contentTypes,
    cases: rows.map((r) => ({
      id: r.target.id,
      name: r.target.name,
      reqPerSec: r.reqs,
      latencyMs: { mean: r.latencyMean, p99: r.latencyP99 },
      answered: r.target.answered,
    })),
    ratios: ours,
    target: {
      oursOverPlainAtLeast: TARGET_RATIO,
      oursOverSdkBearerAtLeast: TARGET_BEARER_RATIO,
      met: Object.fromEntries(
        ours.map((o) => [
          o.id,
          {
            overPlain: o.oursOverPlain >= TARGET_RATIO,
            overSdkBearer: o.oursOverSdkBearer >= TARGET_BEARER_RATIO,
          },
        ]),
      ),
    },
  });
  out.write(`results: ${output}\n`);
}

await main();
