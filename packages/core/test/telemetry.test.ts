/**
 * OpenTelemetry through the real request pipeline behind a real HTTP server on 127.0.0.1, with tokens from the
 * real development IdP, recorded by the SDK's in-memory exporters: spans with their decision attributes and the
 * trace context of the request (W3C headers and the call's `_meta`), the metrics, and never a token, claim set
 * or argument value in any of them.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthSecError } from '../src/errors.js';
import {
  type AuthSec,
  type AuthSecOptions,
  createAuthSec,
  createRequestPipeline,
  createResourceServer,
  DECISIONS_EXTRA_KEY,
  type RequestPipeline,
  silentLogger,
  TELEMETRY_METRICS,
} from '../src/index.js';
import { createPostgresAuditSink } from '../src/postgres/index.js';
import { SAMPLE_TOOLS } from './fixtures/sample-tools.js';

const RESOURCE = 'http://127.0.0.1:3000/mcp';
const ANALYST = 'analyst@acme-corp.example';
// An argument value no span, event or metric may show.
const SECRET_ARGUMENT = 'argument-value-7f3a9c-never-in-telemetry';

let idp: DevIdp;
beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
});
afterAll(async () => {
  await idp?.close();
});

interface Recorder {
  readonly spans: InMemorySpanExporter;
  readonly metrics: InMemoryMetricExporter;
  readonly reader: PeriodicExportingMetricReader;
  readonly options: AuthSecOptions['telemetry'];
  shutdown(): Promise<void>;
}

function recorder(): Recorder {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exported on demand (forceFlush) only: the interval is longer than any test.
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    spans,
    metrics,
    reader,
    options: { tracer: tracerProvider.getTracer('test'), meter: meterProvider.getMeter('test') },
    async shutdown() {
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function engine(options: Partial<AuthSecOptions>): AuthSec {
  const authsec = createAuthSec({
    issuers: [idp.issuer],
    audience: RESOURCE,
    logger: silentLogger,
    ...options,
  });
  for (const [name, requirement] of Object.entries(SAMPLE_TOOLS))
    authsec.tools.register(name, requirement, name);
  cleanups.push(() => authsec.close());
  return authsec;
}

/** The pipeline behind a real HTTP server: responses as they are, forwards as their decisions. */
async function serve(pipeline: RequestPipeline): Promise<string> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const result = await pipeline.handle({
        method: req.method ?? 'GET',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remoteAddress: req.socket.remoteAddress,
        ...(req.method === 'POST' ? { body: { stream: req } } : {}),
      });
      if (result.kind === 'respond') {
        const { status, headers, body } = result.response;
        res.writeHead(status, headers).end(body === undefined ? undefined : JSON.stringify(body));
        return;
      }
      const decisions = [...(result.authInfo?.extra[DECISIONS_EXTRA_KEY] ?? [])].map(([id, d]) => ({
        id,
        tool: d.target,
        code: d.error?.code,
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ decisions }));
    })();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

/** An engine with the sample tools, behind the pipeline, behind a real HTTP server. */
async function served(options: Partial<AuthSecOptions>): Promise<{ authsec: AuthSec; url: string }> {
  const authsec = engine(options);
  const resourceServer = createResourceServer({
    authsec,
    resourceUrl: RESOURCE,
    authorizationServers: [idp.issuer],
  });
  return { authsec, url: await serve(createRequestPipeline({ resourceServer })) };
}

function call(id: number, name: string, extra: Record<string, unknown> = {}) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { query: SECRET_ARGUMENT }, ...extra },
  };
}

async function post(url: string, token: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function hex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');
}

const byName = (spans: readonly ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

/** Every string a backend would store from these spans and metrics, for the secrecy checks. */
function exported(spans: readonly ReadableSpan[], recorded: InMemoryMetricExporter): string {
  return JSON.stringify({
    spans: spans.map((s) => ({
      name: s.name,
      attributes: s.attributes,
      events: s.events,
      links: s.links,
      status: s.status,
    })),
    metrics: recorded
      .getMetrics()
      .flatMap((r) => r.scopeMetrics.flatMap((m) => m.metrics))
      .map((m) => ({ name: m.descriptor.name, points: m.dataPoints.map((p) => p.attributes) })),
  });
}

/** The last export's data points of `name`. */
function points(recorded: InMemoryMetricExporter, name: string): DataPoint<number | Histogram>[] {
  const last = recorded.getMetrics().at(-1);
  const metric = last?.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  return (metric?.dataPoints ?? []) as DataPoint<number | Histogram>[];
}

function sumWhere(list: DataPoint<number | Histogram>[], attributes: Record<string, unknown>): number {
  return list
    .filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
    .reduce((total, p) => total + (typeof p.value === 'number' ? p.value : p.value.count), 0);
}

describe('telemetry through the request pipeline', () => {
  it('records authenticate, tools/call and authorize spans under the request trace, with decision attributes only', async () => {
    const rec = recorder();
    cleanups.push(() => rec.shutdown());
    const { authsec, url } = await served({ telemetry: rec.options });
    const token = await idp.issueToken(ANALYST, { audience: RESOURCE });
    const traceId = hex(16);
    const parentSpanId = hex(8);
    const metaTraceId = hex(16);
    const metaSpanId = hex(8);
    const batch = [
      call(1, 'view_analytics'),
      call(2, 'admin_panel'),
      call(3, 'view_reports', { _meta: { traceparent: `00-${metaTraceId}-${metaSpanId}-01` } }),
    ];
    const headers = { traceparent: `00-${traceId}-${parentSpanId}-01`, tracestate: 'vendor=opaque' };

    const first = await post(url, token, batch, headers);
    expect(first.status).toBe(200);
    expect(first.body.decisions).toEqual([
      { id: 1, tool: 'view_analytics' },
      { id: 2, tool: 'admin_panel', code: 'PERMISSION_DENIED' },
      { id: 3, tool: 'view_reports' },
    ]);
    // The same token again: a verified-token cache hit.
    expect((await post(url, token, batch, headers)).status).toBe(200);
    // A malformed token: refused before any decision.
    const refused = await post(url, 'not-a-valid-token.x.y', batch, headers);
    expect(refused.status).toBe(401);

    const spans = rec.spans.getFinishedSpans();
    const authentications = byName(spans, 'authsec.authenticate');
    expect(authentications).toHaveLength(3);
    for (const span of authentications) {
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(parentSpanId);
      expect(span.spanContext().traceState?.get('vendor')).toBe('opaque');
    }
    expect(authentications.map((s) => s.attributes)).toEqual([
      {
        'authsec.decision': 'allow',
        'authsec.tenant_id': 'acme-corp',
        'authsec.issuer': idp.issuer,
        'authsec.cached': false,
      },
      {
        'authsec.decision': 'allow',
        'authsec.tenant_id': 'acme-corp',
        'authsec.issuer': idp.issuer,
        'authsec.cached': true,
      },
      { 'authsec.decision': 'deny', 'authsec.reason': 'TOKEN_INVALID', 'authsec.cached': false },
    ]);

    const analytics = byName(spans, 'tools/call view_analytics');
    const admin = byName(spans, 'tools/call admin_panel');
    const reports = byName(spans, 'tools/call view_reports');
    expect([analytics.length, admin.length, reports.length]).toEqual([2, 2, 2]);
    for (const span of [...analytics, ...admin]) {
      expect(span.spanContext().traceId).toBe(traceId);
      expect(span.parentSpanContext?.spanId).toBe(parentSpanId);
    }
    // The call's own `_meta.traceparent` wins over the HTTP header for that call.
    for (const span of reports) {
      expect(span.spanContext().traceId).toBe(metaTraceId);
      expect(span.parentSpanContext?.spanId).toBe(metaSpanId);
    }
    expect(admin[0]!.attributes).toEqual({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'admin_panel',
      'authsec.tool': 'admin_panel',
      'authsec.tenant_id': 'acme-corp',
      'authsec.issuer': idp.issuer,
      'authsec.decision': 'deny',
      'authsec.reason': 'PERMISSION_DENIED',
    });
    expect(analytics[0]!.attributes['authsec.decision']).toBe('allow');

    // Each decision is an `authsec.authorize` span inside its tools/call span.
    const authorizations = byName(spans, 'authsec.authorize');
    expect(authorizations).toHaveLength(6);
    const toolSpans = new Map([...analytics, ...admin, ...reports].map((s) => [s.spanContext().spanId, s]));
    for (const span of authorizations) {
      const parent = toolSpans.get(span.parentSpanContext?.spanId ?? '');
      expect(parent?.name).toBe(`tools/call ${span.attributes['authsec.tool']}`);
      expect(span.spanContext().traceId).toBe(parent!.spanContext().traceId);
    }
    const deniedDecision = authorizations.find((s) => s.attributes['authsec.tool'] === 'admin_panel');
    expect(deniedDecision?.attributes).toMatchObject({
      'authsec.decision': 'deny',
      'authsec.reason': 'PERMISSION_DENIED',
      'authsec.failed': ['roles'],
    });

    await rec.reader.forceFlush();
    const decisions = points(rec.metrics, TELEMETRY_METRICS.decisions);
    expect(sumWhere(decisions, { 'authsec.operation': 'authenticate', 'authsec.decision': 'allow' })).toBe(2);
    expect(
      sumWhere(decisions, {
        'authsec.operation': 'authenticate',
        'authsec.decision': 'deny',
        'authsec.reason': 'TOKEN_INVALID',
      }),
    ).toBe(1);
    expect(
      sumWhere(decisions, {
        'authsec.operation': 'authorize',
        'authsec.tool': 'admin_panel',
        'authsec.tenant_id': 'acme-corp',
        'authsec.decision': 'deny',
        'authsec.reason': 'PERMISSION_DENIED',
      }),
    ).toBe(2);
    expect(
      sumWhere(decisions, {
        'authsec.operation': 'authorize',
        'authsec.tool': 'view_analytics',
        'authsec.decision': 'allow',
      }),
    ).toBe(2);
    const lookups = points(rec.metrics, TELEMETRY_METRICS.cacheLookups);
    expect(sumWhere(lookups, { 'authsec.cache.result': 'hit' })).toBe(1);
    expect(sumWhere(lookups, { 'authsec.cache.result': 'miss' })).toBe(2);
    const latency = points(rec.metrics, TELEMETRY_METRICS.verificationDuration);
    expect(sumWhere(latency, {})).toBe(3);
    expect(sumWhere(latency, { 'authsec.cached': true, 'authsec.decision': 'allow' })).toBe(1);
    const histogram = latency.find((p) => p.attributes['authsec.cached'] === true)!.value as Histogram;
    expect(histogram.sum).toBeGreaterThan(0);

    // Never the token (nor a piece of it), an argument value, the subject or the email.
    const text = exported(spans, rec.metrics);
    const subject = (await authsec.authenticate(token)).subject;
    for (const secret of [
      token,
      token.split('.')[1]!,
      token.split('.')[2]!,
      SECRET_ARGUMENT,
      subject,
      ANALYST,
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain('not-a-valid-token');
  });

  it('ignores a malformed traceparent (a new trace) and never names an unknown tool or an untrusted issuer', async () => {
    const rec = recorder();
    cleanups.push(() => rec.shutdown());
    const { authsec, url } = await served({ telemetry: rec.options });
    const token = await idp.issueToken(ANALYST, { audience: RESOURCE });
    const zeros = `00-${'0'.repeat(32)}-${hex(8)}-01`;
    const response = await post(
      url,
      token,
      [call(1, 'view_analytics', { _meta: { traceparent: 'garbage' } })],
      {
        traceparent: zeros,
      },
    );
    expect(response.status).toBe(200);
    const [authenticateSpan] = byName(rec.spans.getFinishedSpans(), 'authsec.authenticate');
    expect(authenticateSpan?.parentSpanContext).toBeUndefined();
    expect(authenticateSpan?.spanContext().traceId).not.toBe('0'.repeat(32));

    // A caller's strings before they are checked: an unregistered tool, a token from another issuer.
    const principal = await authsec.authenticate(token);
    expect(() => authsec.authorizeTool(principal, { tool: 'no_such_tool_1234', arguments: {} })).toThrow(
      expect.objectContaining({ code: 'NOT_FOUND' }),
    );
    const other = await startDevIdp({ logger: silentLogger });
    cleanups.push(() => other.close());
    const foreign = await other.issueToken(ANALYST, { audience: RESOURCE });
    await expect(authsec.authenticate(foreign)).rejects.toMatchObject({ code: 'TOKEN_ISSUER' });
    const unknown = byName(rec.spans.getFinishedSpans(), 'tools/call');
    expect(unknown).toHaveLength(1);
    expect(unknown[0]!.attributes).toMatchObject({
      'authsec.decision': 'deny',
      'authsec.reason': 'NOT_FOUND',
    });
    await rec.reader.forceFlush();
    const text = exported(rec.spans.getFinishedSpans(), rec.metrics);
    expect(text).not.toContain('no_such_tool_1234');
    expect(text).not.toContain(other.issuer);
  });
});

describe('telemetry of the audit log', () => {
  it('observes the queue depth and drops of the PostgreSQL sink, and counts decisions refused while it cannot record', async () => {
    const rec = recorder();
    cleanups.push(() => rec.shutdown());
    // The master database is down: every write pass fails, the events stay buffered.
    const sink = createPostgresAuditSink({
      resolve: async () => {
        throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
      },
      masterKey: { activeKid: 'k1', keys: new Map([['k1', new Uint8Array(32).fill(7)]]) },
      maxBuffer: 2,
      batchSize: 1,
      flushIntervalMs: 3_600_000,
      logger: silentLogger,
    });
    const authsec = engine({ telemetry: rec.options, audit: { sinks: [sink] } });
    cleanups.push(() => sink.close().catch(() => undefined));
    const principal = await authsec.authenticate(await idp.issueToken(ANALYST, { audience: RESOURCE }));
    authsec.authorizeTool(principal, { tool: 'view_analytics', arguments: { query: SECRET_ARGUMENT } });
    expect(() => authsec.authorizeTool(principal, { tool: 'admin_panel' })).toThrow(
      expect.objectContaining({ code: 'PERMISSION_DENIED' }),
    );
    // Two events wait (maxBuffer): the next decisions are refused, not made unrecorded.
    expect(sink.buffered).toBe(2);
    expect(() => authsec.authorizeTool(principal, { tool: 'view_analytics' })).toThrow(
      expect.objectContaining({ code: 'SERVICE_UNAVAILABLE' }),
    );
    expect(() => authsec.authorize(principal, SAMPLE_TOOLS.view_analytics!, 'view_analytics')).toThrow(
      expect.objectContaining({ code: 'SERVICE_UNAVAILABLE' }),
    );
    // A writer that ignores `accepting`: two more are kept (twice maxBuffer), the rest is lost and counted.
    const event = { ...sampleEvent(), tenantId: 'acme-corp' };
    for (let i = 0; i < 5; i++) sink.write(event);
    expect([sink.buffered, sink.dropped, sink.refused]).toEqual([4, 3, 2]);

    await rec.reader.forceFlush();
    expect(sumWhere(points(rec.metrics, TELEMETRY_METRICS.auditQueueDepth), {})).toBe(4);
    expect(sumWhere(points(rec.metrics, TELEMETRY_METRICS.auditDropped), {})).toBe(3);
    expect(sumWhere(points(rec.metrics, TELEMETRY_METRICS.auditRefused), {})).toBe(2);
    const spans = rec.spans.getFinishedSpans();
    const refusedCall = byName(spans, 'tools/call view_analytics').at(-1)!;
    expect(refusedCall.attributes).toMatchObject({
      'authsec.decision': 'error',
      'authsec.reason': 'SERVICE_UNAVAILABLE',
    });
    expect(refusedCall.status).toEqual({ code: 2, message: 'SERVICE_UNAVAILABLE' });
    expect(
      sumWhere(points(rec.metrics, TELEMETRY_METRICS.decisions), {
        'authsec.operation': 'authorize',
        'authsec.decision': 'error',
        'authsec.reason': 'SERVICE_UNAVAILABLE',
      }),
    ).toBe(1);
    expect(exported(spans, rec.metrics)).not.toContain(SECRET_ARGUMENT);
  });
});

function sampleEvent() {
  return {
    time: new Date().toISOString(),
    action: 'tool.call' as const,
    decision: 'allow' as const,
    subject: 'someone',
    tenantId: 'acme-corp',
    clientId: undefined,
    target: 'hello',
    reason: undefined,
    failed: undefined,
    argumentsDigest: undefined,
    latencyMicros: 1,
  };
}

describe('telemetry without an SDK', () => {
  it('works with the API installed and no tracer or meter registered, and follows an SDK registered later', async () => {
    const { url } = await served({});
    const token = await idp.issueToken(ANALYST, { audience: RESOURCE });
    const headers = { traceparent: `00-${hex(16)}-${hex(8)}-01` };
    const before = await post(url, token, [call(1, 'view_analytics'), call(2, 'admin_panel')], headers);
    expect(before.body.decisions).toEqual([
      { id: 1, tool: 'view_analytics' },
      { id: 2, tool: 'admin_panel', code: 'PERMISSION_DENIED' },
    ]);

    // The engine holds the API's proxy tracer: a provider registered globally afterwards receives its spans.
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    expect(trace.setGlobalTracerProvider(provider)).toBe(true);
    cleanups.push(async () => {
      trace.disable();
      await provider.shutdown();
    });
    await post(url, token, [call(1, 'view_analytics')], headers);
    expect(
      exporter
        .getFinishedSpans()
        .map((s) => s.name)
        .sort(),
    ).toEqual(['authsec.authenticate', 'authsec.authorize', 'tools/call view_analytics']);
  });

  it('is off with telemetry: false, and refuses a telemetry option that is not a tracer and meter', async () => {
    const rec = recorder();
    cleanups.push(() => rec.shutdown());
    const authsec = engine({ telemetry: false });
    const principal = await authsec.authenticate(await idp.issueToken(ANALYST, { audience: RESOURCE }));
    authsec.authorizeTool(principal, { tool: 'view_analytics' });
    expect(rec.spans.getFinishedSpans()).toHaveLength(0);
    expect(() =>
      createAuthSec({
        issuers: [idp.issuer],
        audience: RESOURCE,
        logger: silentLogger,
        telemetry: { tracer: {} as never },
      }),
    ).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
