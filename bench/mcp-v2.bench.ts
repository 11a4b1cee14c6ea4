/**
 * `tools/call` throughput on the MCP SDK v2, protocol 2026-07-28 (stateless: no session, the `_meta` envelope and
 * the `Mcp-Method`/`Mcp-Name` headers on every request): the same `hello` tool on the SDK's own `createMcpHandler`
 * without authentication, behind the SDK's `requireBearerAuth` with a jose verifier, and through
 * `@authsec/mcp/v2` (the request pipeline, the verified-token cache on, an audit sink), in one run. Targets: ours
 * >= 0.95x the plain v2 server and >= 1.3x the SDK's bearer middleware. Each server runs in a child process of its
 * own; autocannon drives it from this process with 10 connections on 127.0.0.1. Runs alternate between servers
 * (at least 9 rounds); the table shows medians. Beside the throughput, each server's own CPU time per call
 * (`process.cpuUsage` in the child over the measured rounds), which the load generator sharing the two cores does
 * not blur. Writes `results/mcp-v2.json`; reports, never gates.
 *
 * The frameworks: the same tool on a plain v2 server and through AuthSec on Express, Fastify, and NestJS on each
 * platform; for each, ours against the plain server on the same framework (targets: >= 0.95x on Express and
 * Fastify, >= 0.9x on NestJS) and the framework's own cost (the plain server on it against the plain server on
 * `node:http`), measured in the same alternated rounds.
 *
 * Tuning: `BENCH_MCP_ROUNDS` (default 9, at least 9), `BENCH_MCP_SECONDS` (default 3), `BENCH_MCP_WARMUP_SECONDS`
 * (default 2), `BENCH_MCP_CONNECTIONS` (default 10), `BENCH_MCP_FRAMEWORKS` (comma-separated among `express`,
 * `fastify`, `nest-express`, `nest-fastify`, or `none`; default all), `BENCH_MCP_INPROC_CALLS` (default 3000).
 */

import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { nextMessage } from './lib/children.js';
import { FRAMEWORKS, type Framework } from './lib/mcp-v2-frameworks.js';
import type { BenchV2ServerKind, InProcessRequest, V2ChildMessage } from './lib/mcp-v2-servers.js';
import {
  alternateRounds,
  envInt,
  environment,
  formatNumber,
  formatRatio,
  formatTable,
  packageRoot,
  pairedRatio,
  summarize,
  writeJson,
} from './lib/measure.js';

const TARGET_PLAIN = 0.95;
const TARGET_BEARER = 1.3;
const MODERN = '2026-07-28';

/** One place a plain v2 server and ours are compared: `node:http` or a framework. */
interface Stack {
  readonly label: string;
  readonly plain: BenchV2ServerKind;
  readonly ours: BenchV2ServerKind;
  readonly plainName: string;
  readonly oursName: string;
  /** Ours over the plain server on the same stack, at least. */
  readonly target: number;
}

const STACKS: Record<'node' | Framework, Stack> = {
  node: {
    label: 'node:http',
    plain: 'v2-plain',
    ours: 'v2-authsec',
    plainName: 'plain v2 createMcpHandler',
    oursName: '@authsec/mcp/v2, cache on, audit',
    target: TARGET_PLAIN,
  },
  express: {
    label: 'Express 5',
    plain: 'v2-plain-express',
    ours: 'v2-authsec-express',
    plainName: 'plain v2 on Express',
    oursName: '@authsec/express/v2',
    target: TARGET_PLAIN,
  },
  fastify: {
    label: 'Fastify 5',
    plain: 'v2-plain-fastify',
    ours: 'v2-authsec-fastify',
    plainName: 'plain v2 on Fastify',
    oursName: '@authsec/fastify/v2',
    target: TARGET_PLAIN,
  },
  'nest-express': {
    label: 'NestJS on Express',
    plain: 'v2-plain-nest-express',
    ours: 'v2-authsec-nest-express',
    plainName: 'plain v2 in Nest (Express)',
    oursName: '@authsec/nestjs/v2 (Express)',
    target: 0.9,
  },
  'nest-fastify': {
    label: 'NestJS on Fastify',
    plain: 'v2-plain-nest-fastify',
    ours: 'v2-authsec-nest-fastify',
    plainName: 'plain v2 in Nest (Fastify)',
    oursName: '@authsec/nestjs/v2 (Fastify)',
    target: 0.9,
  },
};

/** The frameworks `BENCH_MCP_FRAMEWORKS` names (default all); a name it does not know stops the run. */
function frameworksToRun(): Framework[] {
  const raw = process.env.BENCH_MCP_FRAMEWORKS?.trim();
  if (raw === undefined || raw === '') return [...FRAMEWORKS];
  if (raw === 'none') return [];
  const names = raw.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !(FRAMEWORKS as readonly string[]).includes(n));
  if (unknown.length > 0)
    throw new Error(
      `BENCH_MCP_FRAMEWORKS: unknown ${unknown.join(', ')} (expected ${FRAMEWORKS.join(', ')} or none)`,
    );
  return names as Framework[];
}

/** The stacks of this run: `node:http` always, then the frameworks asked for. */
const stacks: readonly Stack[] = [STACKS.node, ...frameworksToRun().map((f) => STACKS[f])];

const CASES: readonly { id: BenchV2ServerKind; name: string }[] = [
  { id: 'v2-plain', name: STACKS.node.plainName },
  { id: 'v2-bearer', name: 'v2 requireBearerAuth + jose' },
  { id: 'v2-authsec', name: STACKS.node.oursName },
  ...stacks.slice(1).flatMap((stack) => [
    { id: stack.plain, name: stack.plainName },
    { id: stack.ours, name: stack.oursName },
  ]),
];

interface Target {
  readonly id: BenchV2ServerKind;
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly hello: string;
  readonly headers: Record<string, string>;
  answered: number;
  cpuMicros: number;
  calls: number;
  readonly runs: autocannon.Result[];
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** A 2026-07-28 `tools/call` of `hello`: the envelope in `_meta`, the method and name also as headers. */
function helloCall(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'hello',
      arguments: {},
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN,
        'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  });
}

let nextId = 1;

async function check(target: Target): Promise<void> {
  const response = await fetch(target.url, {
    method: 'POST',
    headers: target.headers,
    body: helloCall(nextId++),
  });
  const text = await response.text();
  if (
    response.status !== 200 ||
    !text.includes(target.hello) ||
    response.headers.get('mcp-session-id') !== null
  )
    throw new Error(
      `${target.name}: expected a stateless 200 with '${target.hello}', got ${response.status} ${text.slice(0, 300)}`,
    );
}

async function startTarget(id: BenchV2ServerKind, name: string): Promise<Target> {
  const script = join(fileURLToPath(new URL('.', import.meta.url)), 'lib', 'mcp-v2-servers.js');
  const child = fork(script, [id], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await nextMessage<V2ChildMessage, 'ready'>(child, 'ready');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': MODERN,
    'mcp-method': 'tools/call',
    'mcp-name': 'hello',
    ...(ready.token ? { authorization: `Bearer ${ready.token}` } : {}),
  };
  return {
    id,
    name,
    child,
    url: ready.url,
    hello: ready.hello,
    headers,
    answered: 0,
    cpuMicros: 0,
    calls: 0,
    runs: [],
  };
}

async function stats(target: Target) {
  target.child.send({ type: 'stats' });
  return nextMessage<V2ChildMessage, 'stats'>(target.child, 'stats');
}

async function load(target: Target, seconds: number, connections: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers: target.headers,
    connections,
    duration: seconds,
    requests: [{ setupRequest: (request) => ({ ...request, body: helloCall(nextId++) }) }],
  });
  target.answered += result['2xx'];
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0 || result['2xx'] === 0)
    throw new Error(
      `${target.name}: ${result['2xx']} answers, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  return result;
}

/** The in-process variant's rounds: calls per second (as `alternateRounds` returns them) and CPU per call. */
interface InProcess {
  readonly samples: number[][];
  readonly cpuPerCall: number[][];
}

/**
 * One in-process round in the target's own process (no socket, no load generator): its calls per second, with
 * the server CPU per call pushed onto `cpuPerCall` when given.
 */
async function inProcessRound(
  target: Target,
  calls: number,
  connections: number,
  cpuPerCall?: number[],
): Promise<number> {
  target.child.send({
    type: 'inproc',
    calls,
    concurrency: connections,
    headers: target.headers,
    body: helloCall(1),
  } satisfies InProcessRequest);
  const answer = await nextMessage<V2ChildMessage, 'inproc'>(target.child, 'inproc');
  if (answer.bad > 0)
    throw new Error(`${target.name} in process: ${answer.bad} of ${calls} calls failed (${answer.sample})`);
  cpuPerCall?.push(answer.cpuMicros / calls);
  return calls / (answer.micros / 1e6);
}

/** A case's row among a report's rows. */
function rowOf<R extends { readonly target: Target }>(rows: readonly R[], id: BenchV2ServerKind): R {
  return rows.find((r) => r.target.id === id)!;
}

/** The three `node:http` cases among a report's rows. */
function byKind<R extends { readonly target: Target }>(rows: readonly R[]) {
  return {
    plain: rowOf(rows, 'v2-plain'),
    bearer: rowOf(rows, 'v2-bearer'),
    ours: rowOf(rows, 'v2-authsec'),
  };
}

async function main(): Promise<void> {
  const rounds = envInt('BENCH_MCP_ROUNDS', 9, 9);
  const seconds = envInt('BENCH_MCP_SECONDS', 3);
  const warmupSeconds = envInt('BENCH_MCP_WARMUP_SECONDS', 2);
  const connections = envInt('BENCH_MCP_CONNECTIONS', 10);
  const targets: Target[] = [];
  try {
    for (const { id, name } of CASES) targets.push(await startTarget(id, name));
    for (const target of targets) await check(target);
    for (const target of targets.filter((t) => !t.id.startsWith('v2-plain'))) {
      const refused = await fetch(target.url, {
        method: 'POST',
        headers: { ...target.headers, authorization: 'Bearer not-a-token' },
        body: helloCall(nextId++),
      });
      await refused.arrayBuffer();
      if (refused.status !== 401)
        throw new Error(`${target.name}: a bad token was answered ${refused.status}, expected 401`);
    }
    progress(
      `MCP SDK v2, 2026-07-28 stateless tools/call: ${connections} connections, ${rounds} rounds of ${seconds} s, warm-up ${warmupSeconds} s`,
    );
    for (const target of targets) {
      progress(`  warm-up: ${target.name}`);
      await load(target, warmupSeconds, connections);
    }
    const before = new Map<Target, { cpu: number; calls: number }>();
    for (const target of targets) {
      const s = await stats(target);
      before.set(target, { cpu: s.cpuMicros, calls: s.calls });
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
    for (const target of targets) {
      await check(target);
      const s = await stats(target);
      target.cpuMicros = s.cpuMicros - before.get(target)!.cpu;
      target.calls = s.calls - before.get(target)!.calls;
      if (s.calls < target.answered)
        throw new Error(`${target.name}: ${target.answered} answers but the tool ran ${s.calls} times`);
      // Ours records one allowed tool.call per run of the tool (and one authenticate deny for the bad token).
      if (target.id.startsWith('v2-authsec') && (s.audit['tool.call:allow'] ?? 0) !== s.calls)
        throw new Error(`${target.name}: ${s.calls} calls but ${JSON.stringify(s.audit)} audit events`);
    }
    // The in-process variant: the same listener in the same process, driven without sockets, alternated.
    const inprocCalls = envInt('BENCH_MCP_INPROC_CALLS', 3000);
    progress(`  in process: ${rounds} alternated rounds of ${inprocCalls} calls, ${connections} at a time`);
    for (const target of targets) await inProcessRound(target, inprocCalls, connections);
    const cpuPerCall = targets.map((): number[] => []);
    const inproc: InProcess = {
      samples: await alternateRounds(targets, rounds, (target) =>
        inProcessRound(target, inprocCalls, connections, cpuPerCall[targets.indexOf(target)]),
      ),
      cpuPerCall,
    };
    report(targets, samples, { rounds, seconds, warmupSeconds, connections, inprocCalls }, inproc);
  } finally {
    for (const target of targets) if (target.child.connected) target.child.disconnect();
  }
}

/** A case's figures in one variant (HTTP or in process): median per second, its rounds, CPU µs per call. */
interface Figures {
  readonly target: Target;
  readonly median: number;
  readonly samples: readonly number[];
  readonly cpu: number;
}

/**
 * Per stack: ours over the plain server on the same stack (medians, paired rounds, server CPU per call), against
 * the stack's target, and the stack's own cost (the plain server on it against the plain one on `node:http`).
 */
function stackComparison(figures: readonly Figures[]) {
  const plainNode = rowOf(figures, 'v2-plain');
  return stacks.map((stack) => {
    const plain = rowOf(figures, stack.plain);
    const ours = rowOf(figures, stack.ours);
    const ratio = ours.median / plain.median;
    return {
      stack: stack.label,
      ours: stack.ours,
      target: stack.target,
      oursOverPlain: ratio,
      paired: pairedRatio(ours.samples, plain.samples),
      byCpu: plain.cpu / ours.cpu,
      met: ratio >= stack.target,
      frameworkOverNode: plain.median / plainNode.median,
      frameworkCpuMicros: plain.cpu - plainNode.cpu,
      oursCpuMicros: ours.cpu - plain.cpu,
    };
  });
}

function stackTable(comparison: ReturnType<typeof stackComparison>): string {
  return formatTable(
    [
      { header: 'stack', cell: (r: (typeof comparison)[number]) => r.stack, align: 'left' },
      { header: 'ours / plain on it', cell: (r) => formatRatio(r.oursOverPlain) },
      { header: 'paired', cell: (r) => formatRatio(r.paired) },
      { header: 'by CPU', cell: (r) => formatRatio(r.byCpu) },
      { header: 'target', cell: (r) => `>= ${r.target}x ${r.met ? 'PASS' : 'MISS'}` },
      {
        header: 'ours CPU µs/call',
        cell: (r) => `${r.oursCpuMicros >= 0 ? '+' : ''}${r.oursCpuMicros.toFixed(1)}`,
      },
      { header: 'stack / node:http (plain)', cell: (r) => formatRatio(r.frameworkOverNode) },
      {
        header: 'stack CPU µs/call',
        cell: (r) => `${r.frameworkCpuMicros >= 0 ? '+' : ''}${r.frameworkCpuMicros.toFixed(1)}`,
      },
    ],
    comparison,
  );
}

function report(
  targets: Target[],
  samples: number[][],
  config: Record<string, number>,
  inproc: InProcess,
): void {
  const rows = targets.map((target, i) => ({
    target,
    reqs: summarize(samples[i]!),
    samples: samples[i]!,
    cpuPerCall: target.cpuMicros / Math.max(1, target.calls),
    p99: summarize(target.runs.map((r) => r.latency.p99)),
  }));
  const { plain, bearer, ours } = byKind(rows);
  const table = formatTable(
    [
      { header: 'case', cell: (r: (typeof rows)[number]) => r.target.name, align: 'left' },
      { header: 'req/s (median)', cell: (r) => formatNumber(r.reqs.median) },
      { header: 'min–max req/s', cell: (r) => `${formatNumber(r.reqs.min)}–${formatNumber(r.reqs.max)}` },
      { header: 'spread', cell: (r) => `${(r.reqs.spread * 100).toFixed(1)}%` },
      { header: 'p99 ms', cell: (r) => formatNumber(r.p99.median) },
      { header: 'server CPU µs/call', cell: (r) => r.cpuPerCall.toFixed(1) },
      { header: 'vs plain', cell: (r) => formatRatio(r.reqs.median / plain.reqs.median) },
      { header: 'vs bearer', cell: (r) => formatRatio(r.reqs.median / bearer.reqs.median) },
    ],
    rows,
  );
  const overPlain = ours.reqs.median / plain.reqs.median;
  const overBearer = ours.reqs.median / bearer.reqs.median;
  const cpuOverPlain = plain.cpuPerCall / ours.cpuPerCall;
  const cpuOverBearer = bearer.cpuPerCall / ours.cpuPerCall;
  const mark = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const out = process.stdout;
  out.write('\nMCP SDK v2 tools/call throughput, 2026-07-28 (stateless Streamable HTTP)\n');
  out.write(
    `${config.connections} connections, ${config.rounds} alternated rounds of ${config.seconds} s per server\n\n${table}\n\n`,
  );
  out.write(
    `ours / plain v2: ${formatRatio(overPlain)} (paired ${formatRatio(pairedRatio(ours.samples, plain.samples))}), by server CPU per call ${formatRatio(cpuOverPlain)}   ${mark(overPlain >= TARGET_PLAIN)} (target >= ${TARGET_PLAIN}x)\n`,
  );
  out.write(
    `ours / v2 bearer: ${formatRatio(overBearer)} (paired ${formatRatio(pairedRatio(ours.samples, bearer.samples))}), by server CPU per call ${formatRatio(cpuOverBearer)}   ${mark(overBearer >= TARGET_BEARER)} (target >= ${TARGET_BEARER}x)\n`,
  );
  const httpStacks = stackComparison(
    rows.map((r) => ({ target: r.target, median: r.reqs.median, samples: r.samples, cpu: r.cpuPerCall })),
  );
  out.write(
    `\nPer stack: ours over the plain v2 server on the same stack; the stack's own cost is its plain server over the plain one on node:http (CPU: what it adds per call)\n\n${stackTable(httpStacks)}\n`,
  );
  const inRows = targets.map((target, i) => ({
    target,
    perSecond: summarize(inproc.samples[i]!),
    cpu: summarize(inproc.cpuPerCall[i]!),
  }));
  const { plain: inPlain, bearer: inBearer, ours: inOurs } = byKind(inRows);
  const inTable = formatTable(
    [
      { header: 'case', cell: (r: (typeof inRows)[number]) => r.target.name, align: 'left' },
      { header: 'calls/s (median)', cell: (r) => formatNumber(r.perSecond.median) },
      { header: 'spread', cell: (r) => `${(r.perSecond.spread * 100).toFixed(1)}%` },
      { header: 'CPU µs/call', cell: (r) => r.cpu.median.toFixed(1) },
      { header: 'vs plain', cell: (r) => formatRatio(r.perSecond.median / inPlain.perSecond.median) },
      { header: 'vs bearer', cell: (r) => formatRatio(r.perSecond.median / inBearer.perSecond.median) },
    ],
    inRows,
  );
  const inOverPlain = inOurs.perSecond.median / inPlain.perSecond.median;
  const inOverBearer = inOurs.perSecond.median / inBearer.perSecond.median;
  out.write(
    `\nIn process (the same listener, no sockets, ${config.inprocCalls} calls per round, ${config.connections} at a time)\n\n${inTable}\n\n`,
  );
  out.write(
    `in process, ours / plain v2: ${formatRatio(inOverPlain)}   ${mark(inOverPlain >= TARGET_PLAIN)} (target >= ${TARGET_PLAIN}x); ours / v2 bearer: ${formatRatio(inOverBearer)}   ${mark(inOverBearer >= TARGET_BEARER)} (target >= ${TARGET_BEARER}x)\n`,
  );
  const inStacks = stackComparison(
    inRows.map((r, i) => ({
      target: r.target,
      median: r.perSecond.median,
      samples: inproc.samples[i]!,
      cpu: r.cpu.median,
    })),
  );
  out.write(`\nIn process, per stack\n\n${stackTable(inStacks)}\n\n`);
  const output = join(packageRoot(import.meta.url), 'results', 'mcp-v2.json');
  writeJson(output, {
    generatedAt: new Date().toISOString(),
    environment: environment(),
    config: {
      ...config,
      protocol: MODERN,
      transport: 'streamable-http (stateless)',
      host: '127.0.0.1',
      loadGenerator: 'autocannon 9.0.0',
    },
    cases: rows.map((r) => ({
      id: r.target.id,
      name: r.target.name,
      reqPerSec: r.reqs,
      p99Ms: r.p99,
      serverCpuMicrosPerCall: r.cpuPerCall,
      answered: r.target.answered,
    })),
    ratios: {
      overPlain,
      overBearer,
      cpuOverPlain,
      cpuOverBearer,
      inProcessOverPlain: inOverPlain,
      inProcessOverBearer: inOverBearer,
    },
    stacks: { http: httpStacks, inProcess: inStacks },
    inProcess: inRows.map((r) => ({
      id: r.target.id,
      callsPerSecond: r.perSecond,
      cpuMicrosPerCall: r.cpu,
    })),
    target: {
      overPlainAtLeast: TARGET_PLAIN,
      overBearerAtLeast: TARGET_BEARER,
      met: { overPlain: overPlain >= TARGET_PLAIN, overBearer: overBearer >= TARGET_BEARER },
    },
  });
  out.write(`results: ${output}\n`);
}

await main();
