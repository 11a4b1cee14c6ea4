/**
 * OpenTelemetry spans and metrics of the engine's decisions, through `@opentelemetry/api` (an optional peer).
 *
 * The API is loaded once, synchronously, the first time an engine is created with telemetry on (the default):
 * when it is not installed, telemetry is off and costs one `undefined` check per call; nothing here ever throws
 * for its absence. The types below are the subset of the API this module uses, written out so that core's
 * declarations do not import a package that may be missing; the API's `Tracer` and `Meter` satisfy them.
 *
 * What is recorded is a fixed list of decision attributes (see `ATTR`): never a token, a claim set, a subject
 * or an argument value, and never a string the caller chose before it was checked (an unregistered tool name, the
 * issuer of a token that failed), which would also let a caller grow metric cardinality without bound.
 */

import { createRequire } from 'node:module';
import { AuthSecError, toAuthSecError } from './errors.js';
import type { Principal } from './types.js';

/** Attribute values as OpenTelemetry takes them. */
export type TelemetryAttributes = Record<string, string | number | boolean | string[] | undefined>;

/** The part of an OpenTelemetry `Span` the engine uses. */
export interface TelemetrySpan {
  setAttributes(attributes: TelemetryAttributes): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  isRecording(): boolean;
  end(): void;
}

/** The part of an OpenTelemetry `Tracer` the engine uses (`provider.getTracer(...)` satisfies it). */
export interface TelemetryTracer {
  startSpan(
    name: string,
    options?: { kind?: number; attributes?: TelemetryAttributes },
    context?: unknown,
  ): TelemetrySpan;
}

/** What an observable instrument's callback is given. */
export interface TelemetryObservableResult {
  observe(value: number, attributes?: TelemetryAttributes): void;
}

/** The part of an OpenTelemetry observable instrument the engine uses. */
export interface TelemetryObservable {
  addCallback(callback: (result: TelemetryObservableResult) => void): void;
  removeCallback(callback: (result: TelemetryObservableResult) => void): void;
}

/** Options of an instrument. */
export interface TelemetryInstrumentOptions {
  description?: string;
  unit?: string;
  advice?: { explicitBucketBoundaries?: number[] };
}

/** The part of an OpenTelemetry `Meter` the engine uses (`provider.getMeter(...)` satisfies it). */
export interface TelemetryMeter {
  createCounter(
    name: string,
    options?: TelemetryInstrumentOptions,
  ): { add(value: number, attributes?: TelemetryAttributes): void };
  createHistogram(
    name: string,
    options?: TelemetryInstrumentOptions,
  ): { record(value: number, attributes?: TelemetryAttributes): void };
  createObservableGauge(name: string, options?: TelemetryInstrumentOptions): TelemetryObservable;
  createObservableCounter(name: string, options?: TelemetryInstrumentOptions): TelemetryObservable;
}

/**
 * The `telemetry` option of `createAuthSec`. Each field defaults to the global OpenTelemetry API's
 * (`trace.getTracer('@authsec/core')`, `metrics.getMeter('@authsec/core')`), so an application that registers
 * an SDK before creating the engine needs nothing here.
 */
export interface TelemetryOptions {
  /** The tracer for the engine's spans. */
  readonly tracer?: TelemetryTracer;
  /** The meter for the engine's metrics. */
  readonly meter?: TelemetryMeter;
}

/** The subset of `@opentelemetry/api` used at run time. */
interface OtelApi {
  readonly trace: {
    getTracerProvider(): { getTracer(name: string, version?: string): TelemetryTracer };
    getSpan(context: unknown): unknown;
    setSpan(context: unknown, span: TelemetrySpan): unknown;
    setSpanContext(context: unknown, spanContext: RemoteSpanContext): unknown;
  };
  readonly context: { active(): unknown; with<T>(context: unknown, run: () => T): T };
  readonly metrics: { getMeterProvider(): { getMeter(name: string, version?: string): TelemetryMeter } };
  readonly createTraceState?: (raw: string) => unknown;
}

interface RemoteSpanContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly isRemote: true;
  readonly traceState?: unknown;
}

/** Attribute names; the README documents each. */
export const ATTR = {
  decision: 'authsec.decision',
  reason: 'authsec.reason',
  tool: 'authsec.tool',
  tenant: 'authsec.tenant_id',
  issuer: 'authsec.issuer',
  cached: 'authsec.cached',
  failed: 'authsec.failed',
  operation: 'authsec.operation',
  cacheResult: 'authsec.cache.result',
} as const;

/** Metric names; the README documents each. */
export const METRIC = {
  decisions: 'authsec.decisions',
  verificationDuration: 'authsec.verification.duration',
  cacheLookups: 'authsec.token_cache.lookups',
  auditQueueDepth: 'authsec.audit.queue.depth',
  auditDropped: 'authsec.audit.events.dropped',
  auditRefused: 'authsec.audit.refused',
} as const;

const SCOPE = '@authsec/core';
const SPAN_STATUS_ERROR = 2;
// Seconds, as OpenTelemetry's duration conventions ask: a cache hit is microseconds, a JWKS fetch can be seconds.
const DURATION_BUCKETS = [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

let api: OtelApi | null | undefined;

/** `@opentelemetry/api`, required once; `null` when it is not installed (or cannot be loaded). */
function loadApi(): OtelApi | null {
  if (api !== undefined) return api;
  try {
    // Synchronous, so the first request after `createAuthSec` is traced. The API keeps its registrations on
    // `globalThis` (under `Symbol.for` keys), so this copy sees the SDK whichever module format loaded that.
    api = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
  } catch {
    api = null;
  }
  return api;
}

/** The result of a verified-token cache lookup, set by the verifier when it looked (see `TokenVerifier`). */
export interface CacheLookup {
  cache?: 'hit' | 'miss';
}

/** An audit sink's counters, when it keeps them (the PostgreSQL sink does). */
interface CountingSink {
  readonly buffered?: unknown;
  readonly dropped?: unknown;
}

/**
 * The context of the pipeline step being run synchronously (see {@link withTraceContext}). A span the engine
 * starts takes it as its parent, else the API's active context. It needs no context manager: every span is
 * started synchronously inside the step (the async `authenticate` starts its span before its first `await`).
 */
let current: unknown;

/** Runs `run` with `context` as the parent of the spans the engine starts synchronously within it. */
export function withTraceContext<T>(context: unknown, run: () => T): T {
  if (context === undefined) return run();
  const previous = current;
  current = context;
  try {
    return run();
  } finally {
    current = previous;
  }
}

/** The engine's telemetry: see the module comment. Internal; created by `createAuthSec`. */
export interface Telemetry {
  /**
   * The parent context of a request: the active one when an instrumentation already joined a trace (the HTTP
   * server span), else the W3C `traceparent`/`tracestate` headers; `undefined` when neither.
   */
  requestContext(headers: Readonly<Record<string, string | readonly string[] | undefined>>): unknown;
  /** The context of a message's `_meta.traceparent`/`_meta.tracestate` (SEP-414), else `fallback`. */
  metaContext(meta: unknown, fallback: unknown): unknown;
  /** Runs an authentication in an `authsec.authenticate` span, with its metrics. */
  authenticate(run: (lookup: CacheLookup) => Promise<Principal>): Promise<Principal>;
  /** Runs a decision in an `authsec.authorize` span and counts it. `tool` must be a registered name or a target. */
  authorize<T>(principal: Principal, tool: string | undefined, run: () => T): T;
  /** Runs a `tools/call` decision in a `tools/call <tool>` span whose context parents the spans within it. */
  toolCall<T>(principal: Principal, tool: string | undefined, parent: unknown, run: () => T): T;
  /** Counts one decision refused because the audit log could not record it. */
  auditRefused(): void;
  /** Unregisters the observable callbacks. */
  close(): void;
}

const engines = new WeakMap<object, Telemetry>();

/** The telemetry of an engine, `undefined` when it is off. */
export function telemetryOf(engine: object): Telemetry | undefined {
  return engines.get(engine);
}

/** Records `telemetry` as `engine`'s. */
export function registerTelemetry(engine: object, telemetry: Telemetry | undefined): void {
  if (telemetry !== undefined) engines.set(engine, telemetry);
}

/** Runs a pipeline's `tools/call` decision in its span (or as it is, with telemetry off). */
export function traceToolCall<T>(
  telemetry: Telemetry | undefined,
  principal: Principal,
  tool: string,
  meta: unknown,
  requestContext: unknown,
  run: () => T,
): T {
  if (telemetry === undefined) return run();
  return telemetry.toolCall(principal, tool, telemetry.metaContext(meta, requestContext), run);
}

// W3C Trace Context, version 00 exactly; later versions may append fields after the flags.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
// W3C asks propagators to keep at least 512 characters; a longer value is dropped rather than parsed.
const MAX_TRACESTATE = 512;

/** The remote span context of a `traceparent` (and `tracestate`), `undefined` when malformed or absent. */
function parseTraceparent(
  otel: OtelApi,
  traceparent: unknown,
  tracestate: unknown,
): RemoteSpanContext | undefined {
  if (typeof traceparent !== 'string' || traceparent.length > 512) return undefined;
  const match = TRACEPARENT.exec(traceparent.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const state =
    typeof tracestate === 'string' && tracestate.length <= MAX_TRACESTATE && otel.createTraceState
      ? otel.createTraceState(tracestate)
      : undefined;
  return {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: Number.parseInt(flags!, 16),
    isRemote: true,
    ...(state === undefined ? {} : { traceState: state }),
  };
}

/** One header value: a repeated `traceparent` is invalid (W3C); repeated `tracestate` values are joined. */
function header(value: string | readonly string[] | undefined, join: boolean): string | undefined {
  if (typeof value === 'string' || value === undefined) return value;
  if (join) return value.join(',');
  return value.length === 1 ? value[0] : undefined;
}

function decisionOf(error: unknown): { decision: 'deny' | 'error'; reason: string } {
  const err = toAuthSecError(error);
  return { decision: err.status >= 500 ? 'error' : 'deny', reason: err.code };
}

/** The instruments of one meter. */
interface Instruments {
  readonly decisions: ReturnType<TelemetryMeter['createCounter']>;
  readonly duration: ReturnType<TelemetryMeter['createHistogram']>;
  readonly lookups: ReturnType<TelemetryMeter['createCounter']>;
  readonly refused: ReturnType<TelemetryMeter['createCounter']>;
  /** Unregisters the observable callbacks. */
  close(): void;
}

function createInstruments(meter: TelemetryMeter, counting: readonly CountingSink[]): Instruments {
  const decisions = meter.createCounter(METRIC.decisions, {
    description: 'Authentication and authorization decisions, by result, tool and tenant',
    unit: '{decision}',
  });
  const duration = meter.createHistogram(METRIC.verificationDuration, {
    description: 'Time to authenticate a caller: token verification (or a cache hit) and claims validation',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const lookups = meter.createCounter(METRIC.cacheLookups, {
    description: 'Verified-token cache lookups, by result (hit or miss)',
    unit: '{lookup}',
  });
  const refused = meter.createCounter(METRIC.auditRefused, {
    description: 'Decisions refused (503) because the audit log could not record them',
    unit: '{decision}',
  });
  const sum = (field: 'buffered' | 'dropped'): number =>
    counting.reduce((total, sink) => {
      const value = sink[field];
      return typeof value === 'number' ? total + value : total;
    }, 0);
  const observables: [TelemetryObservable, (result: TelemetryObservableResult) => void][] = [];
  if (counting.length > 0) {
    observables.push(
      [
        meter.createObservableGauge(METRIC.auditQueueDepth, {
          description: 'Audit events accepted and not yet written, over every sink that reports it',
          unit: '{event}',
        }),
        (result) => result.observe(sum('buffered')),
      ],
      [
        meter.createObservableCounter(METRIC.auditDropped, {
          description:
            'Audit events lost, over every sink that reports it (0 unless writers ignore backpressure)',
          unit: '{event}',
        }),
        (result) => result.observe(sum('dropped')),
      ],
    );
    for (const [instrument, callback] of observables) instrument.addCallback(callback);
  }
  return {
    decisions,
    duration,
    lookups,
    refused,
    close() {
      for (const [instrument, callback] of observables.splice(0)) instrument.removeCallback(callback);
    },
  };
}

/**
 * Creates an engine's telemetry, or `undefined` when it is off: `options === false`, or `@opentelemetry/api`
 * is not installed. `sinks` are the audit sinks whose queue depth and drops are observed.
 */
export function createTelemetry(
  options: TelemetryOptions | false | undefined,
  sinks: readonly object[],
  onMissingApi: () => void,
): Telemetry | undefined {
  if (options === false) return undefined;
  if (options !== undefined) {
    const given = options as { tracer?: { startSpan?: unknown }; meter?: { createCounter?: unknown } } | null;
    if (
      typeof given !== 'object' ||
      given === null ||
      (given.tracer !== undefined && typeof given.tracer?.startSpan !== 'function') ||
      (given.meter !== undefined && typeof given.meter?.createCounter !== 'function')
    ) {
      throw new AuthSecError(
        'CONFIG_INVALID',
        'telemetry: must be false or { tracer?, meter? } with an OpenTelemetry Tracer and Meter',
      );
    }
  }
  const otel = loadApi();
  if (otel === null) {
    if (options?.tracer !== undefined || options?.meter !== undefined) onMissingApi();
    return undefined;
  }
  const counting = sinks.filter(
    (sink) =>
      typeof (sink as CountingSink).buffered === 'number' ||
      typeof (sink as CountingSink).dropped === 'number',
  ) as CountingSink[];

  // The global providers are looked up again whenever they change: the API's tracer proxy belongs to the
  // copy of the API that made it (an ESM and a CJS copy each have one), and its meters have no proxy at all, so
  // an SDK registered after the engine was created would otherwise never see its spans and metrics.
  let tracerSource: unknown;
  let globalTracer: TelemetryTracer | undefined;
  const tracer = (): TelemetryTracer => {
    if (options?.tracer !== undefined) return options.tracer;
    const provider = otel.trace.getTracerProvider();
    if (provider !== tracerSource || globalTracer === undefined) {
      tracerSource = provider;
      globalTracer = provider.getTracer(SCOPE);
    }
    return globalTracer;
  };
  let meterSource: unknown;
  let instrumentSet: Instruments | undefined;
  const instruments = (): Instruments => {
    const provider = options?.meter === undefined ? otel.metrics.getMeterProvider() : options.meter;
    if (provider !== meterSource || instrumentSet === undefined) {
      instrumentSet?.close();
      meterSource = provider;
      instrumentSet = createInstruments(
        options?.meter ?? (provider as ReturnType<OtelApi['metrics']['getMeterProvider']>).getMeter(SCOPE),
        counting,
      );
    }
    return instrumentSet;
  };
  instruments();

  const parent = (): unknown => current ?? otel.context.active();

  const callerAttributes = (principal: Principal): TelemetryAttributes => ({
    [ATTR.tenant]: principal.tenantId,
    [ATTR.issuer]: principal.issuer,
  });

  return {
    requestContext(headers) {
      const active = otel.context.active();
      if (otel.trace.getSpan(active) !== undefined) return active;
      const remote = parseTraceparent(
        otel,
        header(headers.traceparent, false),
        header(headers.tracestate, true),
      );
      return remote === undefined ? undefined : otel.trace.setSpanContext(active, remote);
    },

    metaContext(meta, fallback) {
      if (typeof meta !== 'object' || meta === null) return fallback;
      const { traceparent, tracestate } = meta as { traceparent?: unknown; tracestate?: unknown };
      const remote = parseTraceparent(otel, traceparent, tracestate);
      return remote === undefined ? fallback : otel.trace.setSpanContext(otel.context.active(), remote);
    },

    async authenticate(run) {
      const parentContext = parent();
      const span = tracer().startSpan('authsec.authenticate', {}, parentContext);
      const lookup: CacheLookup = {};
      const started = performance.now();
      let attributes: TelemetryAttributes;
      try {
        // Active for the verification's own I/O (a JWKS fetch, the directory's queries) where the application
        // has a context manager: instrumented clients then record their spans inside this one.
        const principal = await otel.context.with(otel.trace.setSpan(parentContext, span), () => run(lookup));
        attributes = { [ATTR.decision]: 'allow', ...callerAttributes(principal) };
        return principal;
      } catch (error) {
        const { decision, reason } = decisionOf(error);
        attributes = { [ATTR.decision]: decision, [ATTR.reason]: reason };
        if (decision === 'error') span.setStatus({ code: SPAN_STATUS_ERROR, message: reason });
        throw error;
      } finally {
        const cached = lookup.cache === 'hit';
        const { decisions, duration, lookups } = instruments();
        if (lookup.cache !== undefined) lookups.add(1, { [ATTR.cacheResult]: lookup.cache });
        duration.record((performance.now() - started) / 1000, {
          [ATTR.decision]: attributes![ATTR.decision],
          [ATTR.cached]: cached,
        });
        decisions.add(1, { [ATTR.operation]: 'authenticate', ...attributes! });
        if (span.isRecording()) span.setAttributes({ ...attributes!, [ATTR.cached]: cached });
        span.end();
      }
    },

    authorize(principal, tool, run) {
      const span = tracer().startSpan('authsec.authorize', {}, parent());
      let attributes: TelemetryAttributes = { [ATTR.tool]: tool, ...callerAttributes(principal) };
      try {
        const result = run();
        attributes[ATTR.decision] = 'allow';
        return result;
      } catch (error) {
        const { decision, reason } = decisionOf(error);
        const failed = toAuthSecError(error).details.failed;
        attributes = {
          ...attributes,
          [ATTR.decision]: decision,
          [ATTR.reason]: reason,
          ...(Array.isArray(failed) ? { [ATTR.failed]: failed.map(String) } : {}),
        };
        if (decision === 'error') span.setStatus({ code: SPAN_STATUS_ERROR, message: reason });
        throw error;
      } finally {
        instruments().decisions.add(1, {
          [ATTR.operation]: 'authorize',
          [ATTR.decision]: attributes[ATTR.decision],
          [ATTR.reason]: attributes[ATTR.reason],
          [ATTR.tool]: tool,
          [ATTR.tenant]: principal.tenantId,
        });
        if (span.isRecording()) span.setAttributes(attributes);
        span.end();
      }
    },

    toolCall(principal, tool, parentContext, run) {
      const span = tracer().startSpan(
        tool === undefined ? 'tools/call' : `tools/call ${tool}`,
        {},
        parentContext ?? parent(),
      );
      let attributes: TelemetryAttributes = {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': tool,
        [ATTR.tool]: tool,
        ...callerAttributes(principal),
      };
      try {
        const result = withTraceContext(otel.trace.setSpan(parentContext ?? parent(), span), run);
        attributes[ATTR.decision] = 'allow';
        return result;
      } catch (error) {
        const { decision, reason } = decisionOf(error);
        attributes = { ...attributes, [ATTR.decision]: decision, [ATTR.reason]: reason };
        if (decision === 'error') span.setStatus({ code: SPAN_STATUS_ERROR, message: reason });
        throw error;
      } finally {
        if (span.isRecording()) span.setAttributes(attributes);
        span.end();
      }
    },

    auditRefused() {
      instruments().refused.add(1);
    },

    close() {
      instrumentSet?.close();
    },
  };
}
