/**
 * The request pipeline: the one place that decides, for an HTTP request to an MCP endpoint, what happens in
 * which order. Every adapter (node:http, Express, Fastify, NestJS) and both protocol eras go through it.
 *
 * Plain request in (HTTP method, headers, raw header list, peer address, the body as bytes or already parsed),
 * plain result out: either a response to write (`{ status, headers, body }`) or the verified principal with
 * the decision already taken for each `tools/call`, `resources/read` and `prompts/get` in the message, to hand
 * to the MCP server. The order is fixed here and nowhere else: CORS, `Origin`, `Host`, HTTP method, the
 * `Authorization` header's shape, authentication, body size, batch size, one decision per call, read or get
 * (recorded once), the step-up challenge.
 * No framework or MCP SDK type crosses this module.
 */

import type { AuthSec, Decision, RequirementInput, UseAction, UseInput } from './engine.js';
import { AuthSecError, type ErrorResponse, isAuthSecError } from './errors.js';
import { isLoopbackHost } from './loopback.js';
import {
  type ResourceAuthInfo,
  type ResourceServer,
  type ResourceServerInput,
  toResourceServer,
} from './resource-server.js';
import { telemetryOf, traceToolCall, withTraceContext } from './telemetry.js';
import type { Principal } from './types.js';

/** The key of `AuthInfo.extra` that carries the pipeline's {@link Decisions} to the MCP server. */
export const DECISIONS_EXTRA_KEY = 'decisions';

/**
 * Decisions the pipeline took, by JSON-RPC request id: one per `tools/call` of a registered tool and per
 * `resources/read` or `prompts/get` of a declared one (see {@link PrimitiveRequirements}), each recorded once.
 * A server that finds its request here, with the same action and target, must not decide (or audit) it again.
 */
export type Decisions = ReadonlyMap<string | number, Decision>;

/**
 * The pipeline's decision for one request (by its JSON-RPC id) when it took one for that action and target, read
 * from the `AuthInfo` the MCP server was given; `undefined` means the server decides (stdio, no pipeline).
 */
export function decisionFor(
  authInfo: { readonly extra?: Readonly<Record<string, unknown>> } | undefined,
  id: string | number | undefined,
  action: UseAction,
  target: string,
): Decision | undefined {
  const decisions = authInfo?.extra?.[DECISIONS_EXTRA_KEY];
  if (id === undefined || !(decisions instanceof Map)) return undefined;
  const decision = (decisions as Decisions).get(id);
  return decision?.action === action && decision.target === target ? decision : undefined;
}

/** A declared resource or prompt, found by what a request names. */
export interface PrimitiveRequirement {
  /** The declared name (the audit target). */
  readonly name: string;
  /** Its requirement; `'public'` needs no decision. */
  readonly requirement: RequirementInput | 'public';
}

/**
 * The resources and prompts an endpoint serves, so the pipeline can decide their reads and gets as it does tool
 * calls (tools come from the engine's registry): step-up before the server runs, one audit record.
 */
export interface PrimitiveRequirements {
  /** The resource a `resources/read` URI names (a fixed URI or a matching template), if declared. */
  resource(uri: string): PrimitiveRequirement | undefined;
  /** The prompt a `prompts/get` names, if declared. */
  prompt(name: string): PrimitiveRequirement | undefined;
}

/** The `AuthInfo` the pipeline hands to the MCP server: the resource server's, with the decisions. */
export interface PipelineAuthInfo extends ResourceAuthInfo {
  readonly extra: ResourceAuthInfo['extra'] & { readonly [DECISIONS_EXTRA_KEY]: Decisions };
}

/**
 * The request policy of an MCP endpoint: who may call from where, and the limits. Every field is validated at
 * creation (`TypeError`), never on a request.
 */
export interface RequestPolicyOptions {
  /**
   * Extra `Origin` values accepted besides the resource's own origin (and any loopback origin when the resource
   * is on loopback). Every other `Origin` is refused with 403 (DNS-rebinding protection). Requests without
   * `Origin` (non-browser clients) pass. Default: none.
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * `Host` values (host names, optionally with a port) accepted. When the resource is on loopback, any loopback
   * `Host` is accepted and every other one refused with 403 (DNS rebinding: the browser sends the attacker's
   * name). For other resources the `Host` is checked only when this is set (a proxy may rewrite it).
   * Default: none.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * CORS for browser-based MCP clients: origins (also accepted by the `Origin` check) that get
   * `Access-Control-Allow-Origin` and see `WWW-Authenticate` and `Mcp-Session-Id`. Default: CORS off.
   */
  readonly cors?: { readonly origins: readonly string[] };
  /**
   * How many reverse proxies in front of this server append to `X-Forwarded-For` (`true` means one). Only the
   * loopback check of the tool-based login reads it: the client is the nearest hop no trusted proxy added
   * (the leftmost entries are whatever the client sent). Default `false`: the socket's address. Trusting a
   * proxy that is not there lets any client claim to be local.
   */
  readonly trustProxy?: boolean | number;
  /**
   * How a `tools/call`, `resources/read` or `prompts/get` refused with `INSUFFICIENT_SCOPE` is answered. `'http'` (default): 403 with an RFC 6750
   * `insufficient_scope` challenge naming every scope the message needs, before the MCP server runs (the SDK
   * client steps up). `'result'`: the MCP server answers with an `isError` result whose `_meta` carries the
   * code and scopes, for clients that ignore HTTP challenges.
   */
  readonly insufficientScope?: 'http' | 'result';
  /** Largest request body in bytes; larger is 413. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /**
   * Most messages in one JSON-RPC batch (2025-03-26 clients may batch); a larger batch is refused with 400
   * before any authorization or audit work, so a batch cannot flood the audit log. Default 32.
   */
  readonly maxBatchSize?: number;
}

/** Options of {@link createRequestPipeline}. */
export interface RequestPipelineOptions extends RequestPolicyOptions {
  /** The resource server (or its options) that verifies tokens and builds challenges. */
  readonly resourceServer: ResourceServerInput;
  /** HTTP methods the endpoint serves (besides `OPTIONS`). Default `GET`, `POST`, `DELETE`. */
  readonly methods?: readonly string[];
  /**
   * Lets requests without an `Authorization` header through from loopback clients (the tool-based login over
   * HTTP); they are forwarded without a principal. Default `false`.
   */
  readonly allowAnonymousLoopback?: boolean;
  /** The endpoint's declared resources and prompts, decided here like tool calls. Default: tools only. */
  readonly primitives?: PrimitiveRequirements;
}

/** Header values as Node and the frameworks give them (lowercase names). */
export type PipelineHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * The body of a request: bytes to read under the size limit, a value a framework already parsed, or what a
 * framework's own parser failed on (a body that is not JSON, or larger than its limit), answered as the
 * pipeline answers its own (400 `-32700`, 413).
 */
export type PipelineBody =
  | { readonly stream: AsyncIterable<Uint8Array> }
  | { readonly parsed: unknown }
  | { readonly failed: 'malformed' | 'too-large' };

/** One HTTP request, as plain values. */
export interface PipelineRequest {
  /** The HTTP method. */
  readonly method: string;
  /** Headers by lowercase name. */
  readonly headers: PipelineHeaders;
  /**
   * The raw header list (`[name, value, name, value, ...]`, Node's `rawHeaders`). Node keeps only the first
   * of two `Authorization` headers; the list shows both. Recommended; without it duplicates go unseen.
   */
  readonly rawHeaders?: readonly string[];
  /** The peer's address (the socket's), for the loopback check of the tool-based login. */
  readonly remoteAddress?: string | undefined;
  /** The body (POST). Absent for GET and DELETE. */
  readonly body?: PipelineBody;
}

/** A response for the adapter to write as it is. */
export interface PipelineResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON to send; absent for an empty body (204). */
  readonly body?: unknown;
  /** The request body was not read to its end: the adapter discards the rest (and the connection closes). */
  readonly discardBody?: boolean;
}

/** What the adapter hands to the MCP server. */
export interface PipelineForward {
  readonly kind: 'forward';
  /** The verified caller; absent only for an anonymous loopback request (tool-based login). */
  readonly principal: Principal | undefined;
  /** The `AuthInfo` for the MCP server (`req.auth`); absent without a principal. */
  readonly authInfo: PipelineAuthInfo | undefined;
  /** The parsed JSON-RPC message or batch (POST); `undefined` for GET and DELETE. */
  readonly message: unknown;
  /** Headers to set on whatever the MCP server answers (CORS). */
  readonly headers: Readonly<Record<string, string>>;
}

/** The pipeline's answer: write this response, or forward to the MCP server. */
export type PipelineResult =
  | { readonly kind: 'respond'; readonly response: PipelineResponse }
  | PipelineForward;

/** The request pipeline of one MCP endpoint: see {@link createRequestPipeline}. */
export interface RequestPipeline {
  /** The resource server behind it (metadata, challenges). */
  readonly resourceServer: ResourceServer;
  /** Runs every check in order; never rejects (failures are responses). */
  handle(request: PipelineRequest): Promise<PipelineResult>;
  /** A response for a failure after forwarding (a JSON-RPC internal error without details). */
  internalError(): PipelineResponse;
}

const DEFAULT_MAX_BODY = 1024 * 1024;
const DEFAULT_MAX_BATCH = 32;
const DEFAULT_METHODS: readonly string[] = ['GET', 'POST', 'DELETE'];
const USER_INFO_KEY = '_user_info';
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;

/**
 * The key that names who a principal is, wherever one is compared with another (MCP session ownership, login
 * sessions): issuer, tenant and subject. Memoised per frozen principal (a token-cache hit returns the same
 * object), so comparing costs a map lookup.
 */
export function principalKey(principal: Principal): string {
  let key = principalKeys.get(principal);
  if (key === undefined) {
    key = JSON.stringify([principal.issuer, principal.tenantId, principal.subject]);
    if (Object.isFrozen(principal)) principalKeys.set(principal, key);
  }
  return key;
}
const principalKeys = new WeakMap<Principal, string>();

function originOf(value: string): URL | undefined {
  try {
    const url = new URL(value);
    return url.origin === value ? url : undefined;
  } catch {
    return undefined;
  }
}

/** The host name of a `Host` header value (`[::1]:3000` → `[::1]`), lowercased; `undefined` when malformed. */
function hostName(value: string): string | undefined {
  const host = value.trim().toLowerCase();
  if (host === '') return undefined;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? undefined : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

function rpcError(
  status: number,
  code: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
  extra: Partial<PipelineResponse> = {},
): PipelineResponse {
  return {
    status,
    headers: { ...JSON_HEADERS, ...headers },
    body: { jsonrpc: '2.0', error: { code, message }, id: null },
    ...extra,
  };
}

function respond(response: PipelineResponse | ErrorResponse): PipelineResult {
  return { kind: 'respond', response };
}

/** A request of a message that names a primitive: its id, method and what it names. */
interface NamedRequest {
  readonly id: string | number;
  readonly method: 'tools/call' | 'resources/read' | 'prompts/get';
  /** The tool or prompt name, or the resource URI. */
  readonly name: string;
  readonly arguments: unknown;
  /** `_meta`: it carries the request's trace context (`traceparent`, `tracestate`: SEP-414). */
  readonly meta: unknown;
}

const NAMING_METHODS = new Set(['tools/call', 'resources/read', 'prompts/get']);

/** The requests of one JSON-RPC message or batch that call a tool, read a resource or get a prompt. */
function namedRequests(message: unknown): NamedRequest[] {
  const messages = Array.isArray(message) ? message : [message];
  const found: NamedRequest[] = [];
  for (const item of messages) {
    if (typeof item !== 'object' || item === null) continue;
    const { method, params, id } = item as { method?: unknown; params?: unknown; id?: unknown };
    if (typeof method !== 'string' || !NAMING_METHODS.has(method)) continue;
    if (typeof params !== 'object' || params === null) continue;
    if (typeof id !== 'string' && typeof id !== 'number') continue;
    const {
      name,
      uri,
      arguments: args,
      _meta: meta,
    } = params as { name?: unknown; uri?: unknown; arguments?: unknown; _meta?: unknown };
    const named = method === 'resources/read' ? uri : name;
    if (typeof named !== 'string') continue;
    found.push({
      id,
      method: method as NamedRequest['method'],
      name: named,
      arguments: method === 'resources/read' ? { uri: named } : withoutUserInfo(args),
      meta,
    });
  }
  return found;
}

// A client-sent `_user_info` is not the caller's: it never reaches the audit digest (the server drops it too).
function withoutUserInfo(args: unknown): unknown {
  if (typeof args !== 'object' || args === null || !(USER_INFO_KEY in args)) return args;
  const { [USER_INFO_KEY]: _forged, ...rest } = args as Record<string, unknown>;
  return rest;
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!Number.isInteger(result) || result <= 0) throw new TypeError(`${name} must be a positive integer`);
  return result;
}

/**
 * Creates the request pipeline of one MCP endpoint (see the module comment for the order of the checks).
 * Refusals: 403 for a refused `Origin` or `Host`, 405 for another method, 400 `invalid_request` with a
 * challenge for two `Authorization` headers or a merged one (a `,` in it), 401 with the RFC 6750 challenge for
 * a missing or bad token, 503 when a key set or the directory is unreachable (fail closed), 413 for a body
 * over the limit, 400 for malformed JSON or an oversized batch, 403 `insufficient_scope` when more scopes
 * alone would allow the message's calls, reads or gets (`insufficientScope: 'http'`). Misconfiguration is a `TypeError`.
 */
export function createRequestPipeline(options: RequestPipelineOptions): RequestPipeline {
  const rs = toResourceServer(options.resourceServer, 'createRequestPipeline');
  const authsec: AuthSec = rs.authsec;
  const telemetry = telemetryOf(authsec);
  const maxBody = positiveInteger(options.maxBodyBytes, DEFAULT_MAX_BODY, 'maxBodyBytes');
  const maxBatch = positiveInteger(options.maxBatchSize, DEFAULT_MAX_BATCH, 'maxBatchSize');
  const mode = options.insufficientScope ?? 'http';
  if (mode !== 'http' && mode !== 'result')
    throw new TypeError("insufficientScope must be 'http' or 'result'");
  const trustedHops =
    options.trustProxy === true
      ? 1
      : options.trustProxy === false || options.trustProxy === undefined
        ? 0
        : options.trustProxy;
  if (!Number.isInteger(trustedHops) || trustedHops < 0)
    throw new TypeError('trustProxy must be a boolean or the number of trusted proxies');
  const methods = new Set((options.methods ?? DEFAULT_METHODS).map((m) => m.toUpperCase()));
  const allowHeader = [...methods].join(', ');
  const anonymousLoopback = options.allowAnonymousLoopback === true;
  const { primitives } = options;
  if (
    primitives !== undefined &&
    (typeof primitives.resource !== 'function' || typeof primitives.prompt !== 'function')
  )
    throw new TypeError('primitives must have resource(uri) and prompt(name)');

  const resource = new URL(rs.resourceUrl);
  const loopbackResource = isLoopbackHost(resource.hostname);
  const corsOrigins = new Set(options.cors?.origins ?? []);
  const allowedOrigins = new Set([...(options.allowedOrigins ?? []), ...corsOrigins]);
  for (const origin of allowedOrigins) {
    if (!originOf(origin)) throw new TypeError(`allowedOrigins: not an origin: ${JSON.stringify(origin)}`);
  }
  const allowedHosts = new Set<string>();
  for (const host of options.allowedHosts ?? []) {
    const name = typeof host === 'string' ? hostName(host) : undefined;
    if (name === undefined) throw new TypeError(`allowedHosts: not a host: ${JSON.stringify(host)}`);
    allowedHosts.add(host.trim().toLowerCase());
    allowedHosts.add(name);
  }
  const checkHosts = loopbackResource || allowedHosts.size > 0;
  if (checkHosts) {
    allowedHosts.add(resource.host.toLowerCase());
    allowedHosts.add(resource.hostname.toLowerCase());
  }

  const originAllowed = (origin: string | undefined): boolean => {
    if (origin === undefined) return true;
    if (origin === resource.origin || allowedOrigins.has(origin)) return true;
    if (!loopbackResource) return false;
    const url = originOf(origin);
    return (
      url !== undefined &&
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      isLoopbackHost(url.hostname)
    );
  };

  const hostAllowed = (host: string | undefined): boolean => {
    if (!checkHosts) return true;
    if (host === undefined) return false;
    const lowered = host.trim().toLowerCase();
    if (allowedHosts.has(lowered)) return true;
    const name = hostName(lowered);
    return name !== undefined && (allowedHosts.has(name) || (loopbackResource && isLoopbackHost(name)));
  };

  const corsHeaders = (origin: string | undefined, preflight: boolean): Record<string, string> => {
    if (origin === undefined || !corsOrigins.has(origin)) return {};
    const headers: Record<string, string> = {
      'access-control-allow-origin': origin,
      vary: 'Origin',
      'access-control-expose-headers': 'WWW-Authenticate, Mcp-Session-Id',
    };
    if (preflight) {
      headers['access-control-allow-methods'] = `${allowHeader}, OPTIONS`;
      headers['access-control-allow-headers'] =
        'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID';
      headers['access-control-max-age'] = '600';
    }
    return headers;
  };

  const isLoopbackClient = (request: PipelineRequest): boolean => {
    let address = request.remoteAddress;
    if (trustedHops > 0) {
      const forwarded = first(request.headers['x-forwarded-for']);
      if (forwarded !== undefined) {
        // Each trusted proxy appended the address it saw; what lies left of those is the client's own claim.
        const hops = forwarded.split(',').map((hop) => hop.trim());
        address = hops.length >= trustedHops ? hops[hops.length - trustedHops] : hops[0];
      }
    }
    return address !== undefined && address !== '' && isLoopbackHost(address);
  };

  /** The one `Authorization` value, `undefined` when absent; a 400 when sent twice or merged. */
  const authorizationOf = (request: PipelineRequest): string | undefined => {
    const value = request.headers.authorization;
    let count = typeof value === 'string' ? 1 : Array.isArray(value) ? value.length : 0;
    const raw = request.rawHeaders;
    if (raw !== undefined) {
      let seen = 0;
      for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'authorization') seen++;
      count = Math.max(count, seen);
    }
    if (count > 1) throw authorizationError('More than one Authorization header was sent');
    const single = Array.isArray(value) ? value[0] : (value as string | undefined);
    // A proxy merges duplicate headers with ", ": a token never contains a comma.
    if (single?.includes(',')) throw authorizationError('The Authorization header holds more than one value');
    return single;
  };

  const authorizationError = (message: string): AuthSecError =>
    new AuthSecError('BAD_REQUEST', message, { details: { header: 'authorization' } });

  const challenge = (error: unknown, cors: Record<string, string>): PipelineResult => {
    const response = rs.challenge(error);
    return respond({ ...response, headers: { ...response.headers, ...cors } });
  };

  const readBody = async (
    body: PipelineBody | undefined,
    declared: number,
    cors: Record<string, string>,
  ): Promise<{ ok: true; value: unknown } | { ok: false; result: PipelineResult }> => {
    if (body === undefined) return { ok: true, value: undefined };
    if ('parsed' in body) return { ok: true, value: body.parsed };
    const malformed = (): { ok: false; result: PipelineResult } => ({
      ok: false,
      result: respond(rpcError(400, -32700, 'Parse error: the body is not valid JSON', cors)),
    });
    const tooLarge = (): { ok: false; result: PipelineResult } => ({
      ok: false,
      result: respond(
        rpcError(
          413,
          -32000,
          `Request body larger than ${maxBody} bytes`,
          { ...cors, connection: 'close' },
          { discardBody: true },
        ),
      ),
    });
    if ('failed' in body) return body.failed === 'too-large' ? tooLarge() : malformed();
    if (Number.isFinite(declared) && declared > maxBody) return tooLarge();
    const read = await readChunks(body.stream, maxBody);
    if (read === 'too-large') return tooLarge();
    if (read === 'error')
      return {
        ok: false,
        result: respond(rpcError(400, -32000, 'The request body could not be read', cors)),
      };
    const chunks = read;
    try {
      return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
    } catch {
      return malformed();
    }
  };

  /** The use a request makes of a protected primitive; `undefined` when it is the MCP server's to answer. */
  const useOf = (request: NamedRequest): UseInput | undefined => {
    if (request.method === 'tools/call') {
      // Unregistered names (public tools, the login tools, unknown names) are the MCP server's to answer.
      const tool = authsec.tools.get(request.name);
      return tool === undefined
        ? undefined
        : {
            action: 'tool.call',
            target: tool.name,
            requirement: tool.requirement,
            arguments: request.arguments,
          };
    }
    const declared =
      request.method === 'resources/read'
        ? primitives?.resource(request.name)
        : primitives?.prompt(request.name);
    if (declared === undefined || declared.requirement === 'public') return undefined;
    return {
      action: request.method === 'resources/read' ? 'resource.read' : 'prompt.get',
      target: declared.name,
      requirement: declared.requirement,
      arguments: request.arguments,
    };
  };

  /** One use decided; a tool call in its `tools/call` span (parented by its `_meta`, else the request). */
  const decideOne = (principal: Principal, use: UseInput, meta: unknown, traceContext: unknown): Decision => {
    if (telemetry === undefined || use.action !== 'tool.call') return authsec.decide(principal, use);
    let decision: Decision | undefined;
    try {
      traceToolCall(telemetry, principal, use.target, meta, traceContext, () => {
        decision = authsec.decide(principal, use);
        // Thrown for the span to see the refusal; the decision itself is kept.
        if (decision.error !== undefined) throw decision.error;
      });
    } catch {
      // The refusal is the decision's.
    }
    return decision!;
  };

  const decide = (
    principal: Principal,
    message: unknown,
    traceContext: unknown,
  ): { decisions: Map<string | number, Decision>; stepUp?: ErrorResponse } => {
    const decisions = new Map<string | number, Decision>();
    const requests = namedRequests(message);
    if (requests.length === 0) return { decisions };
    const needed: string[] = [];
    let firstScope: AuthSecError | undefined;
    for (const request of requests) {
      const use = useOf(request);
      if (use === undefined) continue;
      const decision = decideOne(principal, use, request.meta, traceContext);
      const { error } = decision;
      if (error?.code === 'INSUFFICIENT_SCOPE') {
        firstScope ??= error;
        for (const scope of error.details.scopes ?? []) if (!needed.includes(scope)) needed.push(scope);
      }
      decisions.set(request.id, decision);
    }
    const stepUp = mode === 'http' && firstScope !== undefined;
    for (const decision of decisions.values()) {
      // A message refused for its scopes runs nothing: only the uses that caused the refusal are recorded.
      if (stepUp && decision.error?.code !== 'INSUFFICIENT_SCOPE') continue;
      authsec.record(decision);
    }
    if (!stepUp) return { decisions };
    return {
      decisions,
      stepUp: rs.challenge(
        new AuthSecError('INSUFFICIENT_SCOPE', firstScope!.message, {
          details: { ...firstScope!.details, scopes: needed },
        }),
      ),
    };
  };

  const handle = async (request: PipelineRequest): Promise<PipelineResult> => {
    const method = request.method.toUpperCase();
    const origin = first(request.headers.origin);
    const cors = corsHeaders(origin, method === 'OPTIONS');
    if (!originAllowed(origin)) return respond(rpcError(403, -32000, 'Forbidden: Origin not allowed', cors));
    if (!hostAllowed(first(request.headers.host)))
      return respond(rpcError(403, -32000, 'Forbidden: Host not allowed', cors));
    if (method === 'OPTIONS')
      return respond({ status: 204, headers: { ...cors, allow: `${allowHeader}, OPTIONS` } });
    if (!methods.has(method))
      return respond(rpcError(405, -32000, 'Method not allowed', { ...cors, allow: allowHeader }));

    // The request's trace context (W3C headers), parent of the spans of authentication and decisions.
    const traceContext = telemetry?.requestContext(request.headers);
    let principal: Principal | undefined;
    try {
      const authorization = authorizationOf(request);
      if (!(anonymousLoopback && authorization === undefined && isLoopbackClient(request))) {
        principal = await withTraceContext(traceContext, () => rs.authenticate({ authorization }));
      }
    } catch (error) {
      if (isAuthSecError(error) && error.code === 'BAD_REQUEST') {
        authsec.audit({ action: 'authenticate', decision: 'deny', reason: 'BAD_REQUEST' });
      }
      return challenge(error, cors);
    }

    const read = await readBody(request.body, Number(first(request.headers['content-length'])), cors);
    if (!read.ok) return read.result;
    const message = read.value;
    if (Array.isArray(message) && message.length > maxBatch) {
      return respond(
        rpcError(
          400,
          -32600,
          `Invalid Request: a batch of ${message.length} messages exceeds the limit of ${maxBatch}`,
          cors,
        ),
      );
    }

    if (Array.isArray(message) && hasDuplicateIds(message)) {
      // Each decision is looked up by its request id: two messages with one id would be ambiguous.
      return respond(rpcError(400, -32600, 'Invalid Request: two messages of the batch share an id', cors));
    }
    if (principal === undefined)
      return { kind: 'forward', principal, authInfo: undefined, message, headers: cors };
    const { decisions, stepUp } = decide(principal, message, traceContext);
    if (stepUp !== undefined) return respond({ ...stepUp, headers: { ...stepUp.headers, ...cors } });
    const info = rs.authInfo(principal, { authorization: first(request.headers.authorization) });
    const authInfo: PipelineAuthInfo = {
      ...info,
      extra: { ...info.extra, [DECISIONS_EXTRA_KEY]: decisions },
    };
    return { kind: 'forward', principal, authInfo, message, headers: cors };
  };

  return {
    resourceServer: rs,
    async handle(request) {
      try {
        return await handle(request);
      } catch (error) {
        rs.logger.error('The request pipeline failed', { cause: String(error) });
        return respond(rpcError(500, -32603, 'Internal error'));
      }
    },
    internalError: () => rpcError(500, -32603, 'Internal error'),
  };
}

/** A stream that emits `data`, `end` and `error` (a Node `Readable`, such as an `IncomingMessage`). */
interface EmittingStream {
  on(event: string, listener: (...args: never[]) => void): unknown;
  off(event: string, listener: (...args: never[]) => void): unknown;
}

function isEmitting(stream: unknown): stream is EmittingStream {
  return (
    typeof (stream as EmittingStream).on === 'function' &&
    typeof (stream as EmittingStream).off === 'function'
  );
}

/**
 * Reads a body up to `max` bytes. A Node stream is read with its events: its async iterator costs a promise per
 * chunk, which is measurable on every request. Past the limit, reading stops without destroying the stream
 * (leaving a for-await loop early would destroy it, and the client would see a reset instead of the 413).
 */
function readChunks(
  stream: AsyncIterable<Uint8Array>,
  max: number,
): Promise<Uint8Array[] | 'too-large' | 'error'> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (isEmitting(stream)) {
    return new Promise((resolve) => {
      const finish = (result: Uint8Array[] | 'too-large' | 'error') => {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onError);
        resolve(result);
      };
      const onData = (chunk: Uint8Array) => {
        size += chunk.byteLength;
        if (size > max) finish('too-large');
        else chunks.push(chunk);
      };
      const onEnd = () => finish(chunks);
      const onError = () => finish('error');
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('error', onError);
    });
  }
  return (async () => {
    const iterator = stream[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) return chunks;
        size += next.value.byteLength;
        if (size > max) return 'too-large';
        chunks.push(next.value);
      }
    } catch {
      return 'error';
    }
  })();
}

function hasDuplicateIds(batch: readonly unknown[]): boolean {
  const ids = new Set<unknown>();
  for (const message of batch) {
    if (typeof message !== 'object' || message === null || !('method' in message)) continue;
    const id = (message as { id?: unknown }).id;
    if (id === undefined || id === null) continue;
    if (ids.has(id)) return true;
    ids.add(id);
  }
  return false;
}

function first(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' || value === undefined ? value : value[0];
}
