import { createHmac } from 'node:crypto';
import { type AuditAction, type AuditEvent, type AuditSink, digestArguments } from './audit.js';
import { AuthSecError, type AuthSecErrorCode, isAuthSecError, toAuthSecError } from './errors.js';
import { createDefaultLogger } from './logger.js';
import type { AuthSecOptions, DirectoryChange, PrincipalDirectory } from './options.js';
import { conditionsOf } from './policy/compile.js';
import {
  type CompiledCondition,
  compileConditions,
  conditionUser,
  failedCondition,
} from './policy/conditions.js';
import {
  type CompiledRequirement,
  compileRequirement,
  createToolRegistry,
  type Explanation,
  isCompiledRequirement,
  authorize as policyAuthorize,
  evaluate as policyEvaluate,
  explain as policyExplain,
  type ToolDefinition,
  type ToolRegistry,
} from './policy/index.js';
import { createScopeExpander } from './scope-hierarchy.js';
import { type CacheLookup, createTelemetry, registerTelemetry } from './telemetry.js';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from './tokens/index.js';
import type { Clock, Logger, Principal, Requirement } from './types.js';

// Distinct stored condition lists compiled and kept (a tenant has one per tool it tightens).
const MAX_STORED_CONDITION_SETS = 10_000;

/** A requirement as written, or one compiled by {@link AuthSec.compile}. */
export type RequirementInput = Requirement | CompiledRequirement;

/** What an adapter passes to {@link AuthSec.authorizeTool}. */
export interface ToolCallInput {
  /** The tool's registered name. */
  readonly tool: string;
  /** Its arguments; only a digest of them reaches the audit log. */
  readonly arguments?: unknown;
}

/** What a caller uses: a tool call, a resource read or a prompt get. */
export type UseAction = 'tool.call' | 'resource.read' | 'prompt.get';

const USE_KINDS: Readonly<Record<UseAction, string>> = {
  'tool.call': 'Tool',
  'resource.read': 'Resource',
  'prompt.get': 'Prompt',
};

/** A use of a protected primitive to decide with {@link AuthSec.decide}. */
export interface UseInput {
  readonly action: UseAction;
  /** The primitive's declared name (a tool, resource or prompt name). */
  readonly target: string;
  readonly requirement: RequirementInput;
  /** The call's arguments; only a digest of them reaches the audit log. */
  readonly arguments?: unknown;
}

/**
 * A decision taken by {@link AuthSec.decide}, not yet recorded. It is a plain value so that whoever took it can
 * hand it on (the request pipeline passes its decisions to the MCP server) and record it once.
 */
export interface Decision {
  /** What was decided: a use, or (from {@link AuthSec.checkConditions}) a tool call's conditions. */
  readonly action: UseAction | 'tool.condition';
  readonly target: string;
  readonly principal: Principal;
  /** The refusal (`PERMISSION_DENIED`, `INSUFFICIENT_SCOPE`, `SERVICE_UNAVAILABLE`, ...); absent when allowed. */
  readonly error?: AuthSecError;
  readonly arguments?: unknown;
  /** How long deciding took. */
  readonly latencyMicros: number;
}

/** A tool call whose conditions {@link AuthSec.checkConditions} checks. */
export interface ConditionCall {
  /** The tool's name. */
  readonly target: string;
  readonly requirement: RequirementInput;
  /** The validated arguments (a digest of them reaches the audit log). */
  readonly args: Readonly<Record<string, unknown>>;
}

/** Fields of an audit record an adapter supplies; the engine fills in the rest. */
export interface AuditInput {
  readonly action: AuditAction;
  readonly decision: AuditEvent['decision'];
  readonly principal?: Principal;
  readonly target?: string;
  readonly reason?: AuthSecErrorCode;
  readonly failed?: readonly string[];
  readonly arguments?: unknown;
  readonly latencyMicros?: number;
}

/**
 * The AuthSec engine: verifies tokens, resolves effective claims, decides, explains and records. Create one per
 * process with {@link createAuthSec} and share it; every method is safe to call concurrently.
 */
export interface AuthSec<M = unknown> {
  /**
   * Verifies a bearer token and returns the caller's frozen principal with effective claims. Throws
   * `TOKEN_*`, `TENANT_UNKNOWN` or `SERVICE_UNAVAILABLE`. A repeated token is served from the verified-token
   * cache (never past its `exp`). While an audit sink is not `accepting` (see `AuditSink.accepting`), this,
   * `authorize` and `authorizeTool` refuse with `SERVICE_UNAVAILABLE` (`details.dependency: 'audit'`) before
   * deciding anything.
   */
  authenticate(token: string): Promise<Principal>;
  /**
   * Like {@link AuthSec.authenticate}, from an HTTP `Authorization` header value: absent is `TOKEN_MISSING`, a
   * scheme other than `Bearer` or a malformed value is `TOKEN_INVALID`.
   */
  authenticateHeader(authorization: string | undefined): Promise<Principal>;
  /** Compiles a requirement once (validates it; `TypeError` for misuse). */
  compile(requirement: Requirement, name?: string): CompiledRequirement;
  /** True when `principal` satisfies `requirement`. Microseconds; no I/O. */
  can(principal: Principal, requirement: RequirementInput): boolean;
  /** Throws `INSUFFICIENT_SCOPE` (more scopes alone would do) or `PERMISSION_DENIED` unless allowed. */
  authorize(principal: Principal, requirement: RequirementInput, target?: string): void;
  /**
   * Decides one use without recording it and without throwing: the refusal, if any, is the decision's `error`
   * (an audit log that cannot record is `SERVICE_UNAVAILABLE`). Record it with {@link AuthSec.record}; deciding
   * and recording are apart so that a message refused as a whole records only the uses that caused it.
   */
  decide(principal: Principal, use: UseInput): Decision;
  /** Records a decision from {@link AuthSec.decide} as one audit event (never throws). */
  record(decision: Decision): void;
  /**
   * Checks the `when` conditions of a tool's requirement, and those the caller's tenant stored for the tool
   * (`PrincipalDirectory.toolConditions`, ANDed), on the call's validated arguments (after the tool's input
   * schema; without `_user_info`), and records the result as one `tool.condition` audit event. Rejects with
   * `CONDITION_FAILED` naming the first condition not met (never an argument's value). The tenant's conditions
   * are those read when the caller was authenticated (no I/O here); for a principal this engine did not
   * authenticate they are read now (`SERVICE_UNAVAILABLE` when the directory cannot answer). No conditions at
   * all: resolves with no event. Run it after the requirement's own decision ({@link AuthSec.decide}), which
   * it never replaces; it passes no audit gate of its own (the decision did).
   */
  checkConditions(principal: Principal, call: ConditionCall): Promise<void>;
  /** Which categories passed and failed, for audit records and denial messages. */
  explain(principal: Principal, requirement: RequirementInput): Explanation;
  /** The tool registry: declare tools once, with their requirement. */
  readonly tools: ToolRegistry<M>;
  /** The registered tools `principal` may use, in registration order. */
  visibleTools(principal: Principal): ToolDefinition<M>[];
  /**
   * Authorizes a call to a registered tool and records the decision. Unknown tools are `NOT_FOUND`. Hidden is
   * not forbidden: every call is checked again, whatever a list showed.
   */
  authorizeTool(principal: Principal, call: ToolCallInput): ToolDefinition<M>;
  /**
   * Records an audit event (never a token, secret or claim set). Never throws: arguments at any depth, cyclic
   * ones included, are digested; arguments that throw when read are recorded without a digest; a failing sink
   * is logged.
   */
  audit(input: AuditInput): void;
  /** The engine's logger (JSON lines on stderr by default). */
  readonly logger: Logger;
  /** The engine's clock. */
  readonly clock: Clock;
  /**
   * For readiness probes: whether the engine can verify and resolve callers now. Checks the key set of every
   * issuer whose keys come from its JWKS (fetching it when none is at hand, at most once per cooldown) and the
   * directory when it has a `check`, and whether the audit sinks that report `accepting` can record decisions.
   * Never rejects; a closed engine is not ready.
   */
  readiness(): Promise<Readiness>;
  /**
   * Listens to the directory's changes (a grant, a revocation, a tenant changed): from this process, or from any
   * replica through the PostgreSQL change feed. For servers that must tell live callers their lists changed.
   * Returns the unsubscribe function; without a directory that reports changes, nothing is ever heard.
   */
  subscribe(listener: (change: DirectoryChange) => void): () => void;
  /** Drops every cached verified token (for example after a key compromise). */
  clearTokenCache(): void;
  /** Flushes audit sinks and releases timers, pools and listeners. Idempotent. */
  close(): Promise<void>;
}

/** What {@link AuthSec.readiness} reports. */
export interface Readiness {
  /** True when every check passed. */
  readonly ready: boolean;
  /**
   * One entry per dependency: `keys <issuer>` per JWKS-based issuer, `directory` when it can be checked, and
   * `audit` when an audit sink reports `accepting` (unavailable while decisions are refused for it).
   */
  readonly checks: Readonly<Record<string, 'ok' | 'unavailable'>>;
}

/** A directory check slower than this counts as unavailable: a readiness probe must answer in time. */
const READINESS_DEADLINE_MS = 3000;

/** Resolves `true` when `check` resolves within `ms`, `false` when it rejects or is late. */
function passesWithin(check: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    check.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(false);
      },
    );
  });
}

const compiledCache = new WeakMap<Requirement, CompiledRequirement>();

/**
 * Creates the engine. Options are validated here, once: invalid ones throw `CONFIG_INVALID` naming the option,
 * insecure-but-allowed ones log a warning that says what to change.
 */
export function createAuthSec<M = unknown>(options: AuthSecOptions): AuthSec<M> {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('createAuthSec: options object required');
  // Options read by authSecOptionsFromEnv carry AUTHSEC_DATABASE_URL, but the engine opens no database: taken
  // as they are, the claims would go unvalidated while the deployment says a database validates them.
  const { databaseUrl } = options as { readonly databaseUrl?: unknown };
  if (databaseUrl !== undefined && databaseUrl !== '' && !options.directory) {
    throw new TypeError(
      "createAuthSec: AUTHSEC_DATABASE_URL is set (options.databaseUrl) but no directory validates claims against it: create the engine with `createAuthSec((await openStorageFromEnv(env)).options)` from '@authsec/core/postgres', or pass `directory`",
    );
  }
  // Without an explicit logger: JSON lines on stderr until an adapter routes them to the application's logger.
  const logger = options.logger ?? createDefaultLogger();
  const clock = options.clock ?? Date.now;
  const tokenConfig = resolveTokenConfig(options, logger);
  const verifier: TokenVerifier = createTokenVerifier(tokenConfig, logger);
  const directory = options.directory;
  if (!directory) {
    logger.warn('No directory configured: token claims are used as they are, without database validation', {
      option: 'directory',
    });
  }
  const sinks: readonly AuditSink[] = options.audit?.sinks ?? [];
  const pseudonymize = options.audit?.pseudonymizeSubjects === true;
  const pseudonymKey = options.audit?.pseudonymKey;
  if (pseudonymize && (pseudonymKey === undefined || Buffer.byteLength(pseudonymKey) < 32)) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'audit.pseudonymKey: at least 32 bytes are required with pseudonymizeSubjects',
    );
  }
  const telemetry = createTelemetry(options.telemetry, sinks, () =>
    logger.warn(
      'telemetry: a tracer or meter was given but @opentelemetry/api cannot be loaded; telemetry is off',
      {
        option: 'telemetry',
      },
    ),
  );
  const registry = createToolRegistry<M>({ logger });
  let closed = false;

  const compiled = (requirement: RequirementInput, name?: string): CompiledRequirement => {
    if (isCompiledRequirement(requirement)) return requirement;
    let hit = compiledCache.get(requirement);
    if (!hit) {
      hit = compileRequirement(requirement, { logger, ...(name ? { name } : {}) });
      compiledCache.set(requirement, hit);
    }
    return hit;
  };

  const subjectFor = (principal: Principal | undefined): string | undefined => {
    if (!principal) return undefined;
    if (!pseudonymize) return principal.subject;
    // Over (issuer, subject): the same `sub` from two issuers is two people, and must not share a pseudonym.
    const person = JSON.stringify([principal.issuer, principal.subject]);
    return `anon:${createHmac('sha256', pseudonymKey!).update(person).digest('hex').slice(0, 32)}`;
  };

  // Events arrive several per millisecond under load: format each millisecond once.
  let lastMs = Number.NaN;
  let lastIso = '';
  const isoTime = (ms: number): string => {
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };

  // The digest reads caller-supplied values: one that throws when read (a getter, a revoked proxy) costs the
  // event its digest, never the event itself.
  const digestOf = (args: unknown, input: AuditInput): string | undefined => {
    if (args === undefined) return undefined;
    try {
      return digestArguments(args);
    } catch (cause) {
      logger.error('Audit could not digest the arguments of a call; recorded without a digest', {
        action: input.action,
        target: input.target,
        cause: String(cause),
      });
      return undefined;
    }
  };

  // Never throws: recording a decision must not change it, nor turn a refusal into a 500.
  const audit = (input: AuditInput): void => {
    if (sinks.length === 0) return;
    let event: AuditEvent;
    try {
      event = {
        time: isoTime(clock()),
        action: input.action,
        decision: input.decision,
        subject: subjectFor(input.principal),
        issuer: input.principal?.issuer,
        tenantId: input.principal?.tenantId,
        clientId: input.principal?.clientId,
        target: input.target,
        reason: input.reason,
        failed: input.failed,
        argumentsDigest: digestOf(input.arguments, input),
        latencyMicros: input.latencyMicros,
      };
    } catch (cause) {
      logger.error('Audit event could not be built; the decision stands unrecorded', {
        action: input.action,
        cause: String(cause),
      });
      return;
    }
    for (const sink of sinks) {
      try {
        sink.write(event);
      } catch (cause) {
        // An audit sink must never turn an allowed call into a failure, nor hide a refusal.
        logger.error('Audit sink failed to accept an event', { cause: String(cause) });
      }
    }
  };

  // Sinks that can fall behind say so through `accepting`; the others are always accepting.
  const gatedSinks = sinks.filter((sink) => 'accepting' in sink);
  let auditRefusing = false;
  /** The audit gate: before a decision, refuse it (503) unless every gated sink can record it. */
  const refuseUnlessAuditing = (): void => {
    if (gatedSinks.length === 0) return;
    let refusing = false;
    for (const sink of gatedSinks) {
      if (sink.accepting !== false) continue;
      refusing = true;
      try {
        sink.recordRefusal?.();
      } catch {
        // A counter must not turn the refusal into another failure.
      }
    }
    if (!refusing) {
      if (auditRefusing) {
        auditRefusing = false;
        logger.info('The audit log accepts events again: decisions are made again');
      }
      return;
    }
    if (!auditRefusing) {
      auditRefusing = true;
      logger.error('The audit log cannot record decisions: refusing them with 503 until it recovers', {
        code: 'SERVICE_UNAVAILABLE',
      });
    }
    // Not audited: the sink that cannot record is the reason; it counts the refusal instead.
    telemetry?.auditRefused();
    throw new AuthSecError('SERVICE_UNAVAILABLE', 'The audit log cannot record decisions now', {
      details: { dependency: 'audit' },
    });
  };

  const expandScopes = createScopeExpander(options.scopes);

  // A directory that fails with anything but an AuthSecError (a custom one, a driver error) is a dependency
  // that cannot answer: fail closed with 503, as the built-in one does, never a 500.
  const resolveInDirectory = async (d: PrincipalDirectory, principal: Principal): Promise<Principal> => {
    try {
      return await d.resolve(principal);
    } catch (error) {
      if (isAuthSecError(error)) throw error;
      logger.error('The directory failed to resolve a caller', { cause: String(error) });
      throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory is unavailable', {
        details: { dependency: 'directory' },
        cause: error,
      });
    }
  };

  const storedByPrincipal = new WeakMap<Principal, ReadonlyMap<string, readonly string[]>>();
  const readStored = async (d: PrincipalDirectory, principal: Principal) => {
    try {
      return await d.toolConditions!(principal);
    } catch (error) {
      if (isAuthSecError(error)) throw error;
      throw new AuthSecError('SERVICE_UNAVAILABLE', 'The directory is unavailable', {
        details: { dependency: 'directory' },
        cause: error,
      });
    }
  };

  const authenticateUntraced = async (token: string, lookup?: CacheLookup): Promise<Principal> => {
    refuseUnlessAuditing();
    const started = performance.now();
    try {
      const fromToken = await verifier.verify(token, lookup);
      const principal = expandScopes(directory ? await resolveInDirectory(directory, fromToken) : fromToken);
      // The tenant's own tool conditions, read with the caller (once per effective principal): a call that
      // passed authentication never waits for the database again, so no decision is recorded for a call that
      // an outage then refuses.
      if (directory?.toolConditions !== undefined && !storedByPrincipal.has(principal))
        storedByPrincipal.set(principal, await readStored(directory, principal));
      return principal;
    } catch (error) {
      const err = toAuthSecError(error);
      if (!isAuthSecError(error))
        logger.error('Unexpected failure while authenticating', { cause: String(error) });
      audit({
        action: 'authenticate',
        decision: err.status >= 500 ? 'error' : 'deny',
        reason: err.code,
        latencyMicros: Math.round((performance.now() - started) * 1000),
      });
      throw err;
    }
  };
  const authenticate: (token: string) => Promise<Principal> =
    telemetry === undefined
      ? authenticateUntraced
      : (token) => telemetry.authenticate((lookup) => authenticateUntraced(token, lookup));

  /** The policy decision of one use, in an `authsec.authorize` span when telemetry is on. */
  const policyDecide = (principal: Principal, requirement: CompiledRequirement, use: UseInput): void => {
    const options = { target: use.target, kind: USE_KINDS[use.action] };
    if (telemetry === undefined) policyAuthorize(principal, requirement, options);
    else telemetry.authorize(principal, use.target, () => policyAuthorize(principal, requirement, options));
  };

  const decide = (principal: Principal, use: UseInput): Decision => {
    const started = performance.now();
    let error: AuthSecError | undefined;
    try {
      refuseUnlessAuditing();
      policyDecide(principal, compiled(use.requirement), use);
    } catch (caught) {
      error = toAuthSecError(caught);
    }
    return {
      action: use.action,
      target: use.target,
      principal,
      ...(error === undefined ? {} : { error }),
      ...(use.arguments === undefined ? {} : { arguments: use.arguments }),
      latencyMicros: Math.round((performance.now() - started) * 1000),
    };
  };

  // The one place a decision becomes an audit event (the pipeline, the servers and authorizeTool all use it).
  const record = (decision: Decision): void => {
    const { error } = decision;
    const failed = error?.details.failed;
    audit({
      action: decision.action,
      decision: error === undefined ? 'allow' : error.status >= 500 ? 'error' : 'deny',
      principal: decision.principal,
      target: decision.target,
      ...(error === undefined ? {} : { reason: error.code }),
      ...(Array.isArray(failed) ? { failed: failed as string[] } : {}),
      ...(decision.arguments === undefined ? {} : { arguments: decision.arguments }),
      latencyMicros: decision.latencyMicros,
    });
  };

  // A tenant's stored conditions, compiled once per distinct list (stored ones were checked when set; one that
  // no longer compiles, after an upgrade say, refuses the call: CONDITION_FAILED naming it, never a silent pass).
  const storedCache = new Map<string, readonly CompiledCondition[]>();
  const storedConditions = (tool: string, expressions: readonly string[]): readonly CompiledCondition[] => {
    if (expressions.length === 0) return [];
    const key = JSON.stringify(expressions);
    let hit = storedCache.get(key);
    if (hit === undefined) {
      try {
        hit = compileConditions(expressions, tool);
      } catch {
        logger.error('A stored tool condition does not compile: the calls it covers are refused', { tool });
        hit = expressions.map((expression) => ({ expression, evaluate: () => false }));
      }
      if (storedCache.size >= MAX_STORED_CONDITION_SETS) storedCache.clear();
      storedCache.set(key, hit);
    }
    return hit;
  };

  const engine: AuthSec<M> = {
    authenticate,
    async authenticateHeader(authorization) {
      if (authorization === undefined || authorization.trim() === '') {
        throw new AuthSecError('TOKEN_MISSING', 'No bearer token was presented');
      }
      const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
      if (!match) throw new AuthSecError('TOKEN_INVALID', 'The Authorization header is not a Bearer token');
      return authenticate(match[1]!);
    },
    compile: (requirement, name) => compiled(requirement, name),
    can: (principal, requirement) => policyEvaluate(principal, compiled(requirement)),
    authorize(principal, requirement, target) {
      refuseUnlessAuditing();
      policyAuthorize(principal, compiled(requirement), target === undefined ? undefined : { target });
    },
    explain: (principal, requirement) => policyExplain(principal, compiled(requirement)),
    async checkConditions(principal, call) {
      const own = conditionsOf(compiled(call.requirement, call.target));
      const lookup = directory?.toolConditions;
      if (own.length === 0 && lookup === undefined) return;
      // No audit gate here: the request was admitted by it when its call was decided, and refusing now would
      // leave that decision's `allow` recorded for a call that did not run. The event goes to the sinks' buffer.
      const started = performance.now();
      let error: AuthSecError | undefined;
      let conditions = own;
      try {
        // The tenant's own conditions on the tool, ANDed with the code's: they tighten, never loosen.
        if (lookup !== undefined) {
          // Read at authentication; a principal from elsewhere (built by hand, from another engine) is looked up now.
          const byTool = storedByPrincipal.get(principal) ?? (await readStored(directory!, principal));
          const stored = storedConditions(call.target, byTool.get(call.target) ?? []);
          if (stored.length > 0) conditions = own.length === 0 ? stored : [...own, ...stored];
        }
        if (conditions.length === 0) return;
        const failed = failedCondition(conditions, {
          args: call.args,
          user: conditionUser(principal),
          now: new Date(clock()),
        });
        if (failed !== undefined)
          error = new AuthSecError(
            'CONDITION_FAILED',
            `Tool '${call.target}' is not allowed for this call: the condition ${failed.expression} does not hold`,
            { details: { failed: [failed.expression] } },
          );
      } catch (caught) {
        error = toAuthSecError(caught);
      }
      record({
        action: 'tool.condition',
        target: call.target,
        principal,
        ...(error === undefined ? {} : { error }),
        arguments: call.args,
        latencyMicros: Math.round((performance.now() - started) * 1000),
      });
      if (error !== undefined) throw error;
    },
    tools: registry,
    visibleTools: (principal) => registry.visibleTools(principal),
    decide,
    record,
    authorizeTool(principal, call) {
      // The audit gate runs before the decision, outside it: a call the audit log cannot record is not decided.
      refuseUnlessAuditing();
      const tool = registry.get(call.tool);
      const decision = tool
        ? decide(principal, {
            action: 'tool.call',
            target: tool.name,
            requirement: tool.requirement,
            arguments: call.arguments,
          })
        : {
            action: 'tool.call' as const,
            target: call.tool,
            principal,
            error: new AuthSecError('NOT_FOUND', `Unknown tool '${call.tool}'`),
            arguments: call.arguments,
            latencyMicros: 0,
          };
      record(decision);
      if (decision.error !== undefined) throw decision.error;
      return tool!;
    },
    audit,
    logger,
    clock,
    async readiness() {
      if (closed) return { ready: false, checks: { engine: 'unavailable' } };
      const [keys, directoryOk] = await Promise.all([
        verifier.checkKeys(),
        directory?.check ? passesWithin(directory.check(), READINESS_DEADLINE_MS) : undefined,
      ]);
      const checks: Record<string, 'ok' | 'unavailable'> = {};
      for (const [issuer, ok] of Object.entries(keys)) checks[`keys ${issuer}`] = ok ? 'ok' : 'unavailable';
      if (directoryOk !== undefined) checks.directory = directoryOk ? 'ok' : 'unavailable';
      if (gatedSinks.length > 0) {
        checks.audit = gatedSinks.every((sink) => sink.accepting !== false) ? 'ok' : 'unavailable';
      }
      return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
    },
    subscribe: (listener) => directory?.subscribe?.(listener) ?? (() => {}),
    clearTokenCache: () => verifier.clearCache(),
    async close() {
      if (closed) return;
      closed = true;
      verifier.close();
      telemetry?.close();
      const results = await Promise.allSettled([
        ...sinks.map((s) => s.close()),
        ...(directory?.close ? [directory.close()] : []),
      ]);
      for (const r of results) {
        if (r.status === 'rejected') logger.error('Failed to close a resource', { cause: String(r.reason) });
      }
    },
  };
  if (telemetry !== undefined) {
    // Spans around the public decisions, with the methods above inside them. The audit gate is inside the
    // span: a decision refused for the audit log is one operators must see.
    const { authorize, authorizeTool } = engine;
    engine.authorize = (principal, requirement, target) =>
      telemetry.authorize(principal, target, () => authorize(principal, requirement, target));
    // Only a registered name names the span: an unknown one is the caller's string.
    engine.authorizeTool = (principal, call) =>
      telemetry.toolCall(principal, registry.get(call.tool)?.name, undefined, () =>
        authorizeTool(principal, call),
      );
    registerTelemetry(engine, telemetry);
  }
  return engine;
}
