/**
 * Micro-benchmarks of `@authsec/core` against raw `jose`, in one process: token verification (cold and
 * cached), authorization, the hot path of one call, and tool listing. Prints a table and the targets, writes
 * `results/core.json`, and exits 0 whether or not a target is met: benchmarks report, they do not gate CI.
 *
 * Tuning (environment): `BENCH_ROUNDS` (default 7, at least 5), `BENCH_SAMPLE_MS` (default 200),
 * `BENCH_WARMUP_MS` (default 300).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuthSec,
  type AuthSecOptions,
  createAuthSec,
  type Principal,
  parseMasterKey,
  type Requirement,
  silentLogger,
} from '@authsec/core';
import { openStorage, type Storage, seedDemoTenant } from '@authsec/core/postgres';
import {
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import {
  envInt,
  environment,
  formatMicros,
  formatNumber,
  formatRatio,
  formatTable,
  measureOps,
  type OpsCase,
  type OpsResult,
  packageRoot,
  pairedRatio,
  sinkValue,
  writeJson,
} from './lib/measure.js';

const ISSUER = 'https://issuer.bench.example';
const AUDIENCE = 'https://mcp.bench.example';
const ALG = 'ES256';
// The engine's default clock tolerance; the reference uses the same so that both do the same checks.
const CLOCK_TOLERANCE_S = 30;

/** Targets from the performance brief. */
const TARGET_HOT_PATH_US = 10;
const TARGET_COLD_RATIO = 1.2;

// The requirement of the authorize case: every category must hold (four checks, none short-circuits to allow).
const DEPLOY_PRODUCTION: Requirement = {
  roles: ['admin', 'deployer'],
  scopes: ['write'],
  resources: ['production'],
  requireAll: true,
};

// The same requirement with three `when` conditions over the arguments and the caller (one comparison, one
// membership, one string function): the cost of conditions is this case's median minus the authorize case's.
const DEPLOY_WITH_CONDITIONS: Requirement = {
  ...DEPLOY_PRODUCTION,
  when: [
    'args.replicas <= 10',
    'args.region in ["eu-west-1", "eu-central-1"]',
    'args.ticket.startsWith(user.sub + "-")',
  ],
};
const TARGET_CONDITIONS_US = 2;
const noop = async (): Promise<void> => {};

// A mix of requirements for the tool-list cases, about half of them satisfied by the benchmark principal.
const TOOL_REQUIREMENTS: readonly (Requirement | undefined)[] = [
  undefined,
  { roles: ['admin'] },
  { roles: ['auditor'] },
  { scopes: { allOf: ['read', 'write'] } },
  DEPLOY_PRODUCTION,
  { groups: ['finance'], scopes: ['billing'], requireAll: false },
  { permissions: ['production:write'] },
  { resources: ['eu-west'], permissions: ['billing:read'], requireAll: true },
];

async function createToken(): Promise<{ token: string; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: ALG, use: 'sig' };
  const token = await new SignJWT({
    email: 'ada@acme.example',
    tenant_id: 'acme-corp',
    roles: ['admin', 'deployer'],
    groups: ['engineering'],
    scope: 'read write',
    resources: ['production', 'staging'],
  })
    .setProtectedHeader({ alg: ALG, kid: 'bench-1', typ: 'at+jwt' })
    .setSubject('user-42')
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  return { token, publicJwk };
}

/**
 * `false` (the default here) is what an application without `@opentelemetry/api` gets: the same code path, so
 * these figures stay comparable with runs from before telemetry existed.
 */
function createEngine(
  publicJwk: JWK,
  cache: boolean,
  telemetry: AuthSecOptions['telemetry'] = false,
): AuthSec {
  return createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
    audience: AUDIENCE,
    logger: silentLogger,
    cache: cache ? { enabled: true, maxEntries: 10_000 } : { enabled: false },
    telemetry,
  });
}

/**
 * A real SDK tracer and meter: every span is recorded (attributes set, ended) and handed to a processor that
 * drops it, so memory stays flat over the run; the metrics are aggregated by a reader that never exports during
 * the run. What is measured is the instrumentation's cost, not an exporter's.
 */
function sdkTelemetry(): {
  options: AuthSecOptions['telemetry'];
  readonly ended: number;
  shutdown(): Promise<void>;
} {
  let ended = 0;
  const drop: SpanProcessor = {
    onStart() {},
    onEnd() {
      ended++;
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [drop] });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(1),
        exportIntervalMillis: 3_600_000,
      }),
    ],
  });
  return {
    options: { tracer: tracerProvider.getTracer('bench'), meter: meterProvider.getMeter('bench') },
    get ended() {
      return ended;
    },
    async shutdown() {
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

/**
 * Storage for the database-validation cases: embedded PGlite always, and real PostgreSQL too when PG_URL is
 * set (each case is labelled with its engine).
 */
async function openBenchStorages(): Promise<{ name: string; storage: Storage; dispose(): Promise<void> }[]> {
  const masterKey = parseMasterKey(Buffer.alloc(32, 5).toString('base64'));
  const out: { name: string; storage: Storage; dispose(): Promise<void> }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'authsec-bench-'));
  const lite = await openStorage({ dataDir: dir, masterKey, logger: silentLogger });
  out.push({
    name: 'PGlite',
    storage: lite,
    dispose: async () => {
      await lite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
  if (process.env.PG_URL) {
    const pg = await openStorage({ databaseUrl: process.env.PG_URL, masterKey, logger: silentLogger });
    out.push({ name: 'PostgreSQL', storage: pg, dispose: () => pg.close() });
  }
  for (const { storage } of out) {
    await seedDemoTenant(storage.tenancy, storage.directory);
    await storage.directory.admin.grant('acme-corp', 'user-42', { groups: ['devops'] }, { issuer: ISSUER });
  }
  return out;
}

function createToolEngine(publicJwk: JWK, count: number): AuthSec {
  const engine = createEngine(publicJwk, true);
  for (let i = 0; i < count; i++) {
    engine.tools.register(`tool_${i}`, TOOL_REQUIREMENTS[i % TOOL_REQUIREMENTS.length], { index: i });
  }
  return engine;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`Benchmark setup is wrong: ${message}`);
}

async function main(): Promise<void> {
  const rounds = envInt('BENCH_ROUNDS', 7);
  const sampleMs = envInt('BENCH_SAMPLE_MS', 200);
  const warmupMs = envInt('BENCH_WARMUP_MS', 300);

  const { token, publicJwk } = await createToken();
  const key = await importJWK(publicJwk, ALG);
  const jwks = createLocalJWKSet({ keys: [publicJwk] });
  const verifyOptions = {
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: [ALG],
    clockTolerance: CLOCK_TOLERANCE_S,
  };

  const cold = createEngine(publicJwk, false);
  const cached = createEngine(publicJwk, true);
  // The hot path with telemetry: the API installed and no SDK registered (its no-op tracer and meter), and a
  // real SDK tracer and meter.
  const noopTelemetry = createEngine(publicJwk, true, undefined);
  const sdk = sdkTelemetry();
  const sdkTraced = createEngine(publicJwk, true, sdk.options);
  const toolEngines = [10, 100, 1_000].map((count) => ({
    count,
    engine: createToolEngine(publicJwk, count),
  }));
  const deploy = cached.compile(DEPLOY_PRODUCTION, 'deploy_production');
  const deployWhen = cached.compile(DEPLOY_WITH_CONDITIONS, 'deploy_production');
  const storages = await openBenchStorages();
  const dbEngines = storages.map(({ name, storage }) => ({
    name,
    storage,
    engine: createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
      audience: AUDIENCE,
      logger: silentLogger,
      directory: storage.directory,
    }),
  }));
  for (const { name, engine } of dbEngines) {
    const effective = await engine.authenticate(token);
    check(
      effective.groups.includes('devops') && engine.can(effective, deploy),
      `${name}: database validation adds the grant and keeps the catalog claims`,
    );
  }

  // Check that every case does the work it claims, before timing it.
  const principal: Principal = await cached.authenticate(token);
  const coldPrincipal = await cold.authenticate(token);
  check(
    principal.subject === 'user-42' && coldPrincipal.subject === 'user-42',
    'authenticate returned a subject',
  );
  check(
    principal.scopes.includes('write') && principal.resources.includes('production'),
    'claims are mapped',
  );
  check(cached.can(principal, deploy), 'the principal satisfies deploy_production');
  cached.authorize(principal, deploy);
  const deployArgs = { replicas: 3, region: 'eu-west-1', ticket: `${principal.subject}-42` };
  const conditionCall = { target: 'deploy_production', requirement: deployWhen, args: deployArgs };
  await cached.checkConditions(principal, conditionCall);
  let refusedCode: string | undefined;
  try {
    await cached.checkConditions(principal, { ...conditionCall, args: { ...deployArgs, replicas: 11 } });
  } catch (error) {
    refusedCode = (error as { code?: string }).code;
  }
  check(
    refusedCode === 'CONDITION_FAILED',
    `a call breaking a condition is refused (${String(refusedCode)})`,
  );
  sdkTraced.authorize(await sdkTraced.authenticate(token), deploy);
  check(sdk.ended === 2, `the SDK tracer records an authenticate and an authorize span (${sdk.ended})`);
  check(
    (await jwtVerify(token, key, verifyOptions)).payload.sub === 'user-42',
    'raw jose verifies the token',
  );
  for (const { count, engine } of toolEngines) {
    const visible = engine.visibleTools(principal).length;
    check(
      visible > 0 && visible < count,
      `visibleTools(${count}) hides some tools and shows others (${visible})`,
    );
  }

  // One cached authenticate and one authorize per operation: the hot path of an MCP server.
  const hotPath =
    (engine: AuthSec) =>
    async (n: number): Promise<number> => {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const caller = await engine.authenticate(token);
        engine.authorize(caller, deploy);
        acc += caller.expiresAt & 1;
      }
      return acc;
    };

  const cases: OpsCase[] = [
    {
      id: 'jose-verify',
      name: 'jose.jwtVerify (imported key)',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += (await jwtVerify(token, key, verifyOptions)).payload.exp! & 1;
        return acc;
      },
    },
    {
      id: 'jose-verify-jwks',
      name: 'jose.jwtVerify (local JWKS)',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += (await jwtVerify(token, jwks, verifyOptions)).payload.exp! & 1;
        return acc;
      },
    },
    {
      id: 'authenticate-cold',
      name: 'authenticate, cache off',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += (await cold.authenticate(token)).expiresAt & 1;
        return acc;
      },
    },
    {
      id: 'authenticate-cached',
      name: 'authenticate, cached',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += (await cached.authenticate(token)).expiresAt & 1;
        return acc;
      },
    },
    {
      id: 'authorize',
      name: 'authorize (requireAll, 3 categories)',
      run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          cached.authorize(principal, deploy);
          acc++;
        }
        return acc;
      },
    },
    {
      // Async, as a server awaits it (a tenant's stored conditions come from the directory): the microtask is
      // part of the figure. The reference is the same loop with an awaited no-op, so only the conditions differ.
      id: 'authorize-conditions',
      name: 'authorize + checkConditions (3 conditions)',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          cached.authorize(principal, deployWhen);
          await cached.checkConditions(principal, conditionCall);
          acc++;
        }
        return acc;
      },
    },
    {
      id: 'authorize-await',
      name: 'authorize + an awaited no-op (reference)',
      async run(n) {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          cached.authorize(principal, deploy);
          await noop();
          acc++;
        }
        return acc;
      },
    },
    ...[
      { id: 'hot-path', name: 'authenticate (cached) + authorize', engine: cached },
      {
        id: 'hot-path-otel-noop',
        name: 'auth (cached) + authorize, OTel API, no SDK',
        engine: noopTelemetry,
      },
      {
        id: 'hot-path-otel-sdk',
        name: 'auth (cached) + authorize, OTel SDK tracer+meter',
        engine: sdkTraced,
      },
    ].map(
      ({ id, name, engine }): OpsCase => ({
        id,
        name,
        run: hotPath(engine),
      }),
    ),
    ...dbEngines.flatMap(({ name, storage, engine }): OpsCase[] => [
      {
        id: `db-warm-${name.toLowerCase()}`,
        name: `authenticate + DB validation, warm (${name}) + authorize`,
        run: hotPath(engine),
      },
      {
        id: `db-cold-${name.toLowerCase()}`,
        name: `authenticate + DB validation, cold (${name}) + authorize`,
        async run(n) {
          let acc = 0;
          for (let i = 0; i < n; i++) {
            // Drops the tenant's cached catalog and bindings: every call reads them from the database.
            storage.directory.invalidate('acme-corp');
            const caller = await engine.authenticate(token);
            engine.authorize(caller, deploy);
            acc += caller.expiresAt & 1;
          }
          return acc;
        },
      },
    ]),
    ...toolEngines.map(
      ({ count, engine }): OpsCase => ({
        id: `visible-tools-${count}`,
        name: `visibleTools, ${formatNumber(count)} tools`,
        run(n) {
          let acc = 0;
          for (let i = 0; i < n; i++) acc += engine.visibleTools(principal).length;
          return acc;
        },
      }),
    ),
  ];

  process.stderr.write(
    `@authsec/core benchmarks: ${cases.length} cases, ${rounds} alternated rounds of ~${sampleMs} ms ` +
      `after ${warmupMs} ms warm-up each\n`,
  );
  const results = await measureOps(cases, {
    rounds,
    sampleMs,
    warmupMs,
    onRound: (round, total) => process.stderr.write(`  round ${round}/${total}\n`),
  });

  const byId = new Map(results.map((r) => [r.id, r]));
  const get = (id: string): OpsResult => byId.get(id)!;
  const joseNs = get('jose-verify').nsPerOp.median;
  const ratio = (id: string, reference: string) => ({
    ofMedians: get(id).nsPerOp.median / get(reference).nsPerOp.median,
    paired: pairedRatio(get(id).nsPerOp.samples, get(reference).nsPerOp.samples),
  });
  const ratios = {
    coldVsJose: ratio('authenticate-cold', 'jose-verify'),
    coldVsJoseJwks: ratio('authenticate-cold', 'jose-verify-jwks'),
    cachedVsJose: ratio('authenticate-cached', 'jose-verify'),
    otelNoopVsNone: ratio('hot-path-otel-noop', 'hot-path'),
    otelSdkVsNone: ratio('hot-path-otel-sdk', 'hot-path'),
  };
  const hotPathUs = get('hot-path').nsPerOp.median / 1000;
  const conditionsUs =
    (get('authorize-conditions').nsPerOp.median - get('authorize-await').nsPerOp.median) / 1000;
  const coldRatio = ratios.coldVsJose.ofMedians;
  const targets = [
    {
      id: 'hot-path-us',
      name: 'cached authenticate + authorize, median',
      value: hotPathUs,
      limit: TARGET_HOT_PATH_US,
      text: `${formatNumber(hotPathUs, 2)} µs (target <= ${TARGET_HOT_PATH_US} µs)`,
      pass: hotPathUs <= TARGET_HOT_PATH_US,
    },
    {
      id: 'conditions-us',
      name: 'three conditions over authorize alone, difference of medians',
      value: conditionsUs,
      limit: TARGET_CONDITIONS_US,
      text: `+${formatNumber(conditionsUs, 2)} µs (target <= ${TARGET_CONDITIONS_US} µs)`,
      pass: conditionsUs <= TARGET_CONDITIONS_US,
    },
    {
      id: 'cold-vs-jose',
      name: 'cold verification / raw jose, ratio of medians',
      value: coldRatio,
      limit: TARGET_COLD_RATIO,
      text: `${formatRatio(coldRatio)} (target <= ${TARGET_COLD_RATIO}x)`,
      pass: coldRatio <= TARGET_COLD_RATIO,
    },
  ];

  const table = formatTable<OpsResult>(
    [
      { header: 'case', cell: (r) => r.name, align: 'left' },
      { header: 'ops/s', cell: (r) => formatNumber(r.opsPerSec) },
      { header: 'µs/op (median)', cell: (r) => formatMicros(r.nsPerOp.median) },
      { header: 'min–max µs', cell: (r) => `${formatMicros(r.nsPerOp.min)}–${formatMicros(r.nsPerOp.max)}` },
      { header: 'spread', cell: (r) => `${formatNumber(r.nsPerOp.spread * 100, 1)}%` },
      { header: 'vs jose', cell: (r) => formatRatio(r.nsPerOp.median / joseNs) },
    ],
    results,
  );
  const ratioLine = (label: string, r: { ofMedians: number; paired: number }): string =>
    `  ${label.padEnd(30)}${formatRatio(r.ofMedians).padStart(9)}  (per round: ${formatRatio(r.paired)})`;
  const env = environment();
  const lines = [
    '',
    `@authsec/core — Node ${env.node}, ${env.cpuModel} x${env.cpuCount}, ${rounds} rounds, medians`,
    '',
    table,
    '',
    'ratios (of the medians; in parentheses, the median of the per-round ratios):',
    ratioLine('cold / raw jose', ratios.coldVsJose),
    ratioLine('cold / jose local JWKS', ratios.coldVsJoseJwks),
    ratioLine('cached / raw jose', ratios.cachedVsJose),
    ratioLine('hot path, OTel no SDK / none', ratios.otelNoopVsNone),
    ratioLine('hot path, OTel SDK / none', ratios.otelSdkVsNone),
    '',
    'targets:',
    ...targets.map((t) => `  ${t.pass ? 'PASS' : 'MISS'}  ${t.name}: ${t.text}`),
    '',
  ];
  process.stdout.write(lines.join('\n'));

  const output = join(packageRoot(import.meta.url), 'results', 'core.json');
  writeJson(output, {
    benchmark: 'core',
    date: new Date().toISOString(),
    environment: env,
    settings: { rounds, sampleMs, warmupMs, algorithm: ALG },
    cases: results.map((r) => ({
      id: r.id,
      name: r.name,
      iterationsPerSample: r.iterations,
      opsPerSec: r.opsPerSec,
      usPerOp: { median: r.nsPerOp.median / 1000, min: r.nsPerOp.min / 1000, max: r.nsPerOp.max / 1000 },
      spread: r.nsPerOp.spread,
      samplesNsPerOp: r.nsPerOp.samples,
    })),
    ratios,
    targets: targets.map(({ text: _text, ...target }) => target),
    sink: sinkValue(),
  });
  process.stdout.write(`results: ${output}\n`);

  await Promise.all([
    cold.close(),
    cached.close(),
    noopTelemetry.close(),
    sdkTraced.close(),
    sdk.shutdown(),
    ...toolEngines.map(({ engine }) => engine.close()),
    ...dbEngines.map(({ engine }) => engine.close()),
  ]);
  for (const s of storages) await s.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
