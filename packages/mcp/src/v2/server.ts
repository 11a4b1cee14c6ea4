/**
 * The MCP SDK v2 idiom, protected: declare tools, resources and prompts once, each with its requirement, and
 * get a fresh `McpServer` per caller that holds exactly what that caller may see. A primitive the caller may
 * not see is not registered on that caller's instance, so it is answered exactly like one that does not exist
 * (both eras), and every call, read and get is authorized again when it runs.
 */

import {
  type AuthSec,
  AuthSecError,
  type CompiledRequirement,
  createRequestStateSealer,
  decisionFor,
  isAuthSecError,
  noServiceAccess,
  type OpenedRequestState,
  PRINCIPAL_EXTRA_KEY,
  type PrimitiveRequirements,
  type Principal,
  type RequestStateSealer,
  type Requirement,
  requiredScopes,
  type ServiceAccess,
  type UseAction,
} from '@authsec/core';
import {
  type CallToolResult,
  type GetPromptResult,
  type Icon,
  type Implementation,
  type InputRequests,
  type InputRequiredResult,
  inputRequired,
  McpServer,
  type McpServerFactory,
  type McpServerOptions,
  ProtocolError,
  ProtocolErrorCode,
  type ReadResourceResult,
  type RegisteredPrompt,
  type RegisteredResource,
  type RegisteredResourceTemplate,
  type RegisteredTool,
  type ResourceMetadata,
  ResourceTemplate,
  type ServerContext,
  type StandardSchemaV1,
  type StandardSchemaWithJSON,
  type ToolAnnotations,
} from '@modelcontextprotocol/server';
import type { ZodRawShape } from 'zod';
import { errorResult, refusalResult } from '../result.js';
import { toUserInfo, USER_INFO_KEY, type UserInfo } from '../user-info.js';
import { confirmCall } from './confirm.js';
import { type ChangeScope, concerns, createScopedEventBus, EVERYONE, type ScopedEventBus } from './events.js';

/** Who may use a primitive: a requirement (`{}` = any authenticated caller), or `'public'` (anyone, even before login). */
export type Access = Requirement | 'public';

/** What a protected handler gets besides its arguments. */
export interface AuthSecContext {
  /** The caller's identity as the brief's `_user_info`; `undefined` only in a public primitive before login. */
  readonly user: UserInfo | undefined;
  /** The verified caller with effective claims; `undefined` only in a public primitive before login. */
  readonly principal: Principal | undefined;
  /** The caller's tenant. */
  readonly tenant: string | undefined;
  /** The tenant's stored service credentials, for this caller. */
  readonly services: ServiceAccess;
  /** The SDK's own request context (cancellation, notifications, the HTTP request). */
  readonly sdk: ServerContext;
  /**
   * What the handler sealed into the previous round's `requestState` (2026-07-28 multi-round-trip requests),
   * opened and checked: sealed for this caller, this primitive and these arguments, unexpired, never used
   * before. `undefined` on a first round.
   */
  readonly state: unknown;
  /** The client's answers to the previous round's input requests, by key (`undefined` on a first round). */
  readonly inputResponses: Readonly<Record<string, unknown>> | undefined;
  /**
   * Ends this round with `input_required`: the requests the client must fulfil, and `state` sealed
   * (encrypted, bound to this caller, primitive and arguments, one-time) as the `requestState` it echoes back.
   */
  inputRequired(spec: {
    readonly inputRequests?: InputRequests;
    readonly state?: unknown;
  }): InputRequiredResult;
}

/** An input, output or argument schema as the SDK takes it: a Standard Schema (a zod 4 object) or a raw zod shape. */
export type AuthSecSchema = StandardSchemaWithJSON | ZodRawShape;

/** `registerTool`'s config of the SDK, with the tool's {@link Access}. */
export interface AuthSecToolConfig {
  readonly title?: string;
  readonly description?: string;
  readonly inputSchema?: AuthSecSchema;
  readonly outputSchema?: AuthSecSchema;
  readonly annotations?: ToolAnnotations;
  readonly icons?: Icon[];
  readonly _meta?: Record<string, unknown>;
  /** Who may see and call the tool. Required: nothing is exposed by omission. */
  readonly requirement: Access;
  /**
   * `'confirm'`: before the handler runs, the caller confirms through a form elicitation naming the tool and
   * a redacted summary of the arguments (an `input_required` round trip sealed to these exact arguments on
   * 2026-07-28, `elicitation/create` on the 2025 era). Declined is `NOT_CONFIRMED`; a client without form
   * elicitation is refused by the SDK. Not for `'public'` tools (a confirmation is bound to its caller).
   */
  readonly approval?: 'confirm';
}

/** The validated arguments a schema describes: a Standard Schema's output, or the object of a raw zod shape. */
export type ArgsOf<S> =
  S extends StandardSchemaV1<unknown, infer Output>
    ? Output
    : S extends ZodRawShape
      ? { [K in keyof S]: S[K] extends StandardSchemaV1<unknown, infer Output> ? Output : unknown }
      : Record<string, unknown>;

/** A tool handler: the validated arguments with `_user_info` added, and the {@link AuthSecContext}. */
export type AuthSecToolHandler<S = AuthSecSchema> = (
  args: ArgsOf<S> & { readonly [USER_INFO_KEY]?: UserInfo },
  context: AuthSecContext,
) => CallToolResult | InputRequiredResult | Promise<CallToolResult | InputRequiredResult>;

/** `registerResource`'s metadata, with the resource's {@link Access}. */
export type AuthSecResourceConfig = ResourceMetadata & { readonly requirement: Access };

/** A resource read callback: the URI (and template variables), and the {@link AuthSecContext}. */
export type AuthSecReadHandler = (
  uri: URL,
  variables: Record<string, string | string[]>,
  context: AuthSecContext,
) => ReadResourceResult | Promise<ReadResourceResult>;

/** `registerPrompt`'s config of the SDK, with the prompt's {@link Access}. */
export interface AuthSecPromptConfig {
  readonly title?: string;
  readonly description?: string;
  readonly argsSchema?: AuthSecSchema;
  readonly icons?: Icon[];
  readonly _meta?: Record<string, unknown>;
  readonly requirement: Access;
}

/** A prompt callback: the arguments and the {@link AuthSecContext}. */
export type AuthSecPromptHandler = (
  args: Record<string, unknown>,
  context: AuthSecContext,
) => GetPromptResult | InputRequiredResult | Promise<GetPromptResult | InputRequiredResult>;

/** Options of {@link protect}. */
export interface ProtectOptions {
  /** The SDK's `McpServer` options for every instance (capabilities, instructions, cache hints, ...). */
  readonly serverOptions?: McpServerOptions;
  /** The `services` of a handler's context for a caller. Default: none (reads fail, and say why). */
  readonly services?: (principal: Principal) => ServiceAccess;
  /**
   * Seals `requestState` for multi-round-trip requests (`createRequestStateSealer` of `@authsec/core`). Default:
   * a sealer with a key for this process only; give one made with the master key ring (and a shared store)
   * when several replicas serve one endpoint.
   */
  readonly requestState?: RequestStateSealer;
}

/** Options of {@link ProtectedMcpServer.instance}. */
export interface InstanceOptions {
  /**
   * The protocol era the instance serves. `'legacy'` (a 2025 session, stdio in the 2025 era) adds
   * `resources/subscribe` and `resources/unsubscribe` when the caller may read a resource (the 2026-07-28 era has no
   * such methods: its clients use `subscriptions/listen`). Default `'modern'`.
   */
  readonly era?: 'modern' | 'legacy';
}

/** A change to announce: the lists of the callers `scope` concerns, or one resource's content. */
export interface Change {
  readonly scope: ChangeScope;
  /** A resource whose content changed (`notifications/resources/updated`); absent: the lists changed. */
  readonly resource?: string;
}

/** A protected v2 server: declarations once, an `McpServer` per caller. See {@link protect}. */
export interface ProtectedMcpServer {
  /** The server's name and version. */
  readonly info: Implementation;
  /** The engine that decides. */
  readonly authsec: AuthSec;
  /** Declares a tool (the SDK's `registerTool`, plus `requirement`). A name declared twice is a `TypeError`. */
  registerTool<S extends AuthSecSchema | undefined = undefined>(
    name: string,
    config: AuthSecToolConfig & { readonly inputSchema?: S },
    handler: AuthSecToolHandler<S>,
  ): void;
  /** Declares a resource at a fixed URI or a URI template (the SDK's `registerResource`, plus `requirement`). */
  registerResource(
    name: string,
    uriOrTemplate: string | ResourceTemplate,
    config: AuthSecResourceConfig,
    read: AuthSecReadHandler,
  ): void;
  /** Declares a prompt (the SDK's `registerPrompt`, plus `requirement`). */
  registerPrompt(name: string, config: AuthSecPromptConfig, handler: AuthSecPromptHandler): void;
  /**
   * A fresh `McpServer` holding what `principal` may see (the public primitives only without one). The SDK's
   * `createMcpHandler` and `serveStdio` want one per request or connection: see {@link ProtectedMcpServer.factory}.
   */
  instance(principal: Principal | undefined, options?: InstanceOptions): McpServer;
  /**
   * Brings a long-lived instance (a legacy session, a stdio connection) up to date with `principal`: what it may
   * now see is registered, what it may no longer see is removed, and the SDK sends the `list_changed`
   * notifications. Returns whether anything changed.
   */
  sync(server: McpServer, principal: Principal | undefined): boolean;
  /**
   * The SDK's `McpServerFactory`: the caller is the verified principal in the request's `authInfo`
   * (`extra.principal`, as AuthSec's endpoints and verifier set it). For `createMcpHandler(server.factory)`.
   */
  readonly factory: McpServerFactory;
  /** Scopes named by the declared requirements (the metadata's default `scopes_supported`). */
  readonly scopesSupported: readonly string[];
  /**
   * The change-event bus for the SDK's `subscriptions/listen` (2026-07-28): pass it as `createMcpHandler`'s `bus`
   * (the v2 endpoint does). A change reaches only the streams of the callers it concerns.
   */
  readonly bus: ScopedEventBus;
  /**
   * Tells every caller `scope` concerns (default: everyone) that its lists may have changed: the
   * `list_changed` notifications of the kinds declared, on `subscriptions/listen` streams and to long-lived
   * instances (legacy sessions, stdio) through {@link ProtectedMcpServer.watch}. The engine's directory changes
   * (a grant, a revocation, a tenant changed, from any replica with the PostgreSQL feed) call it by themselves.
   */
  changed(scope?: ChangeScope): void;
  /**
   * Announces that the content of the resource at `uri` changed (`notifications/resources/updated`), to the
   * listen streams and legacy subscriptions of the callers `scope` concerns (default: everyone) who may read it.
   */
  resourceUpdated(uri: string, scope?: ChangeScope): void;
  /** Hears every change announced ({@link ProtectedMcpServer.changed}, `resourceUpdated`); returns the unsubscribe function. */
  watch(listener: (change: Change) => void): () => void;
  /**
   * Delivers a change to a long-lived instance (from {@link ProtectedMcpServer.instance}) when it concerns the
   * instance's caller: the `list_changed` notifications (its next request brings it up to date, see
   * {@link ProtectedMcpServer.sync}), or `resources/updated` for a URI it subscribed to and may read.
   */
  notify(server: McpServer, change: Change): void;
  /**
   * The declared resources and prompts by what a request names, for the request pipeline: it decides reads and
   * gets as it decides tool calls (the step-up before the server runs, one audit record).
   */
  readonly primitives: PrimitiveRequirements;
}

type Kind = 'tool' | 'resource' | 'prompt';

interface Declaration {
  readonly kind: Kind;
  readonly name: string;
  readonly access: 'public' | CompiledRequirement;
  /** For a resource: whether a URI names it (its fixed URI, or a match of its template). */
  readonly names?: (uri: string) => boolean;
  /** Registers it on an instance, for the caller of that instance. */
  register(
    server: McpServer,
    caller: Caller,
  ): RegisteredTool | RegisteredResource | RegisteredResourceTemplate | RegisteredPrompt;
}

/** The caller an instance was built for, updated by `sync` (a legacy session's token is renewed). */
interface Caller {
  principal: Principal | undefined;
}

interface InstanceState {
  readonly caller: Caller;
  readonly registered: Map<string, { remove(): void }>;
  /** Resource URIs subscribed to with `resources/subscribe` (legacy era). */
  readonly subscribed: Set<string>;
}

/** Most URIs one instance may subscribe to: a client cannot grow a session's memory without bound. */
const MAX_SUBSCRIPTIONS = 256;

const states = new WeakMap<McpServer, InstanceState>();

function principalFrom(
  ctx: ServerContext | { authInfo?: { extra?: Record<string, unknown> } } | undefined,
): Principal | undefined {
  const authInfo =
    ctx && 'http' in ctx
      ? ctx.http?.authInfo
      : (ctx as { authInfo?: { extra?: Record<string, unknown> } } | undefined)?.authInfo;
  const value = authInfo?.extra?.[PRINCIPAL_EXTRA_KEY];
  return typeof value === 'object' && value !== null && typeof (value as Principal).subject === 'string'
    ? (value as Principal)
    : undefined;
}

/** The request pipeline's decision for this request, when it took one for this action and target (HTTP). */
const decidedFor = (sdk: ServerContext, action: UseAction, target: string) =>
  decisionFor(sdk.http?.authInfo, sdk.mcpReq.id, action, target);

const MAX_ECHOED_NAME = 128;
const echo = (name: string) =>
  name.length > MAX_ECHOED_NAME ? `${name.slice(0, MAX_ECHOED_NAME)}...` : name;

/**
 * Protects an MCP SDK v2 server: `protect(authsec, { name, version })` replaces `new McpServer({ name, version })`,
 * and each `registerTool`/`registerResource`/`registerPrompt` takes one more field, `requirement`. Serve it with
 * `createMcpV2HttpHandler` (both eras, over the request pipeline) or with the SDK's own entries through
 * {@link ProtectedMcpServer.factory}. Misconfiguration is a `TypeError` here.
 */
export function protect(
  authsec: AuthSec,
  info: Implementation,
  options: ProtectOptions = {},
): ProtectedMcpServer {
  if (typeof authsec?.authorizeTool !== 'function')
    throw new TypeError('protect: authsec must be an engine from createAuthSec()');
  if (typeof info?.name !== 'string' || info.name === '' || typeof info.version !== 'string')
    throw new TypeError('protect: info needs a name and a version');
  const declarations = new Map<string, Declaration>();
  const scopes = new Set<string>();
  const servicesFor = (principal: Principal | undefined): ServiceAccess =>
    principal && options.services ? options.services(principal) : noServiceAccess;

  const declare = (
    kind: Kind,
    name: string,
    access: Access,
    register: Declaration['register'],
    names?: Declaration['names'],
  ): void => {
    if (typeof name !== 'string' || name === '') throw new TypeError(`protect: a ${kind} needs a name`);
    const key = `${kind}:${name}`;
    if (declarations.has(key)) throw new TypeError(`protect: the ${kind} '${name}' is declared twice`);
    if (access === undefined || access === null)
      throw new TypeError(
        `protect: the ${kind} '${name}' needs a requirement ({} for any authenticated caller, 'public' for anyone)`,
      );
    let compiled: Declaration['access'] = 'public';
    if (access !== 'public') {
      compiled = authsec.compile(access, name);
      // Conditions run on a tool's validated arguments; elsewhere they would have nothing to hold on.
      if (kind !== 'tool' && compiled.conditions.length > 0)
        throw new TypeError(
          `protect: the ${kind} '${name}' has \`when\` conditions, which apply to tools only`,
        );
      // Tools go into the engine's registry: the request pipeline decides their calls before the server runs.
      if (kind === 'tool') authsec.tools.register(name, access, name);
      for (const scope of requiredScopes(compiled)) scopes.add(scope);
    }
    declarations.set(key, { kind, name, access: compiled, register, ...(names ? { names } : {}) });
  };

  const visible = (declaration: Declaration, principal: Principal | undefined): boolean =>
    declaration.access === 'public' ||
    (principal !== undefined && authsec.can(principal, declaration.access));

  const sealer = options.requestState ?? createRequestStateSealer();

  /** The handler's context; a `requestState` sealed for another primitive or other arguments is refused. */
  const contextFor = (caller: Caller, sdk: ServerContext, target: string, args: unknown): AuthSecContext => {
    const principal = principalFrom(sdk) ?? caller.principal;
    const opened = sdk.mcpReq.requestState<OpenedRequestState | string>();
    if (opened !== undefined && (typeof opened === 'string' || !sealer.matches(opened, target, args)))
      throw new AuthSecError('BAD_REQUEST', 'Invalid or expired requestState', {
        details: { reason: 'sealed' },
      });
    const method = sdk.mcpReq.method;
    return {
      user: principal ? toUserInfo(principal) : undefined,
      principal,
      tenant: principal?.tenantId,
      services: servicesFor(principal),
      sdk,
      state: opened === undefined ? undefined : opened.payload,
      inputResponses: sdk.mcpReq.inputResponses,
      inputRequired: ({ inputRequests, state }) => {
        if (state !== undefined && principal === undefined)
          throw new TypeError('inputRequired: a state needs an authenticated caller to be bound to');
        const requestState =
          state === undefined || principal === undefined
            ? undefined
            : sealer.seal(state, { principal, method, target, arguments: args });
        return inputRequired({
          ...(inputRequests === undefined ? {} : { inputRequests }),
          ...(requestState === undefined ? {} : { requestState }),
        });
      },
    };
  };

  /**
   * The SDK's verification hook for an echoed `requestState`, run before any handler: opened for the caller and
   * method (anything else is the SDK's `-32602 Invalid or expired requestState`), consumed once.
   */
  const serverOptions = (caller: Caller): McpServerOptions => ({
    ...options.serverOptions,
    requestState: {
      verify: async (state: string, sdk: ServerContext) => {
        const principal = principalFrom(sdk) ?? caller.principal;
        if (principal === undefined) throw new Error('unauthenticated');
        return sealer.open(state, principal, sdk.mcpReq.method);
      },
    },
  });

  /**
   * Authorizes a read or get when it runs (hidden is not forbidden): the pipeline's decision when it took one
   * (HTTP: already recorded), else decided and recorded here. A refusal is thrown.
   */
  const authorizeUse = (
    declaration: Declaration,
    principal: Principal | undefined,
    action: 'resource.read' | 'prompt.get',
    sdk: ServerContext,
    args: unknown,
  ): void => {
    if (declaration.access === 'public') return;
    if (principal === undefined) throw new AuthSecError('TOKEN_MISSING', 'Authentication required');
    let decision = decidedFor(sdk, action, declaration.name);
    if (decision === undefined) {
      decision = authsec.decide(principal, {
        action,
        target: declaration.name,
        requirement: declaration.access,
        arguments: args,
      });
      authsec.record(decision);
    }
    if (decision.error !== undefined) throw decision.error;
  };

  const primitive = (declaration: Declaration | undefined) =>
    declaration === undefined ? undefined : { name: declaration.name, requirement: declaration.access };

  const watchers = new Set<(change: Change) => void>();
  // The directory is listened to only while someone can hear a change (a listen stream, a watcher such as an
  // endpoint's legacy sessions): a server nobody serves holds no listener on the engine's directory.
  let streams = 0;
  let unsubscribe: (() => void) | undefined;
  const listenWhileHeard = (): void => {
    const heard = streams > 0 || watchers.size > 0;
    if (heard && unsubscribe === undefined) unsubscribe = authsec.subscribe((change) => changed(change));
    else if (!heard && unsubscribe !== undefined) {
      unsubscribe();
      unsubscribe = undefined;
    }
  };
  const bus = createScopedEventBus(
    (error) =>
      authsec.logger.warn('A subscriptions/listen stream failed to take a change', { cause: error.message }),
    (count) => {
      streams = count;
      listenWhileHeard();
    },
  );
  /** The `list_changed` kinds this server can send: only those of what it declares. */
  const changedKinds = () => {
    const kinds = new Set([...declarations.values()].map((d) => d.kind));
    return {
      tools: kinds.has('tool'),
      resources: kinds.has('resource'),
      prompts: kinds.has('prompt'),
    };
  };
  const changed = (scope: ChangeScope = EVERYONE): void => {
    const kinds = changedKinds();
    if (kinds.tools) bus.publishTo({ kind: 'tools_list_changed' }, scope);
    if (kinds.resources) bus.publishTo({ kind: 'resources_list_changed' }, scope);
    if (kinds.prompts) bus.publishTo({ kind: 'prompts_list_changed' }, scope);
    for (const watcher of [...watchers]) watcher({ scope });
  };
  /** Whether `principal` may read the resource at `uri` (an undeclared URI: no one is told anything). */
  const mayRead = (uri: string, principal: Principal | undefined): boolean => {
    for (const declaration of declarations.values())
      if (declaration.kind === 'resource' && declaration.names?.(uri)) return visible(declaration, principal);
    return false;
  };
  const resourceUpdated = (uri: string, scope: ChangeScope = EVERYONE): void => {
    bus.publishTo({ kind: 'resource_updated', uri }, scope, (principal) => mayRead(uri, principal));
    for (const watcher of [...watchers]) watcher({ scope, resource: uri });
  };

  /**
   * The 2025 era's `resources/subscribe` and `resources/unsubscribe` (SDK 2.4's `McpServer` has neither). Any URI
   * is accepted, as for an unknown resource nothing is ever sent: an update reaches a subscriber only for a
   * resource it may read when the update happens.
   */
  const acceptSubscriptions = (mcp: McpServer, state: InstanceState): void => {
    mcp.server.registerCapabilities({ resources: { subscribe: true } });
    mcp.server.setRequestHandler('resources/subscribe', async (request) => {
      const { uri } = request.params;
      if (!state.subscribed.has(uri) && state.subscribed.size >= MAX_SUBSCRIPTIONS)
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `At most ${MAX_SUBSCRIPTIONS} resource subscriptions per session`,
        );
      state.subscribed.add(uri);
      return {};
    });
    mcp.server.setRequestHandler('resources/unsubscribe', async (request) => {
      state.subscribed.delete(request.params.uri);
      return {};
    });
  };

  const server: ProtectedMcpServer = {
    info,
    authsec,
    bus,
    changed,
    resourceUpdated,
    watch(listener) {
      watchers.add(listener);
      listenWhileHeard();
      return () => {
        watchers.delete(listener);
        listenWhileHeard();
      };
    },
    notify(mcp, change) {
      const state = states.get(mcp);
      if (state === undefined) throw new TypeError('notify: this McpServer was not made by instance()');
      const { principal } = state.caller;
      if (!concerns(change.scope, principal) || !mcp.isConnected()) return;
      if (change.resource !== undefined) {
        if (state.subscribed.has(change.resource) && mayRead(change.resource, principal))
          void mcp.server.sendResourceUpdated({ uri: change.resource }).catch(() => {
            // The session went away: nothing to tell.
          });
        return;
      }
      const kinds = changedKinds();
      if (kinds.tools) mcp.sendToolListChanged();
      if (kinds.resources) mcp.sendResourceListChanged();
      if (kinds.prompts) mcp.sendPromptListChanged();
    },
    registerTool(name, config, handler) {
      if (typeof handler !== 'function') throw new TypeError(`protect: the tool '${name}' needs a handler`);
      const { requirement, approval, ...sdkConfig } = config;
      if (approval !== undefined && approval !== 'confirm')
        throw new TypeError(
          `protect: the tool '${name}' has approval ${JSON.stringify(approval)} (expected 'confirm')`,
        );
      if (approval === 'confirm' && requirement === 'public')
        throw new TypeError(
          `protect: the tool '${name}' is public: a confirmation needs an authenticated caller`,
        );
      declare('tool', name, requirement, (mcp, caller) =>
        (mcp.registerTool as (n: string, c: unknown, cb: unknown) => RegisteredTool)(
          name,
          sdkConfig,
          // The SDK passes (args, ctx) to a tool with an input schema and (ctx) to one without.
          async (...params: unknown[]) => {
            const sdk = params[params.length - 1] as ServerContext;
            const args = params.length > 1 ? (params[0] as Record<string, unknown>) : {};
            const { [USER_INFO_KEY]: _forged, ...rest } = (args ?? {}) as Record<string, unknown>;
            let context: AuthSecContext;
            try {
              context = contextFor(caller, sdk, name, rest);
            } catch (error) {
              return failure(authsec, name, error);
            }
            if (requirement !== 'public') {
              const refusal = decideCall(authsec, name, rest, context.principal, sdk);
              if (refusal !== undefined) return refusal;
              // After the requirement's decision, on the arguments the SDK validated against the schema: the
              // tool's own conditions and its tenant's (none at all costs no event).
              try {
                await authsec.checkConditions(context.principal!, { target: name, requirement, args: rest });
              } catch (error) {
                return failure(authsec, name, error);
              }
              if (approval === 'confirm') {
                const step = confirmCall(authsec, name, rest, context.principal!, context);
                if ('answer' in step) return step.answer;
                context = step.context;
              }
            }
            try {
              const input = context.user ? { ...rest, [USER_INFO_KEY]: context.user } : rest;
              return await handler(input as Parameters<typeof handler>[0], context);
            } catch (error) {
              return failure(authsec, name, error);
            }
          },
        ),
      );
    },
    registerResource(name, uriOrTemplate, config, read) {
      if (typeof read !== 'function')
        throw new TypeError(`protect: the resource '${name}' needs a read callback`);
      const { requirement, ...metadata } = config;
      declare(
        'resource',
        name,
        requirement,
        (mcp, caller) => {
          const self = declarations.get(`resource:${name}`)!;
          if (typeof uriOrTemplate === 'string') {
            return mcp.registerResource(
              name,
              uriOrTemplate,
              metadata,
              async (uri: URL, sdk: ServerContext) => {
                const context = contextFor(caller, sdk, name, { uri: uri.href });
                authorizeUse(self, context.principal, 'resource.read', sdk, { uri: uri.href });
                return read(uri, {}, context);
              },
            );
          }
          return mcp.registerResource(
            name,
            uriOrTemplate,
            metadata,
            async (uri: URL, variables: Record<string, string | string[]>, sdk: ServerContext) => {
              const context = contextFor(caller, sdk, name, { uri: uri.href });
              authorizeUse(self, context.principal, 'resource.read', sdk, { uri: uri.href });
              return read(uri, variables, context);
            },
          );
        },
        typeof uriOrTemplate === 'string'
          ? (uri) => uri === uriOrTemplate
          : (uri) => uriOrTemplate.uriTemplate.match(uri) !== null,
      );
    },
    registerPrompt(name, config, handler) {
      if (typeof handler !== 'function') throw new TypeError(`protect: the prompt '${name}' needs a handler`);
      const { requirement, ...sdkConfig } = config;
      declare('prompt', name, requirement, (mcp, caller) => {
        const self = declarations.get(`prompt:${name}`)!;
        return (mcp.registerPrompt as (n: string, c: unknown, cb: unknown) => RegisteredPrompt)(
          name,
          sdkConfig,
          async (...params: unknown[]) => {
            // The SDK passes (args, ctx) for a prompt with arguments and (ctx) for one without.
            const sdk = params[params.length - 1] as ServerContext;
            const args = params.length > 1 ? (params[0] as Record<string, unknown>) : {};
            const context = contextFor(caller, sdk, name, args);
            authorizeUse(self, context.principal, 'prompt.get', sdk, args);
            return handler(args, context);
          },
        );
      });
    },
    instance(principal, instanceOptions = {}) {
      const caller: Caller = { principal };
      const mcp = new McpServer(info, serverOptions(caller));
      const state: InstanceState = { caller, registered: new Map(), subscribed: new Set() };
      states.set(mcp, state);
      for (const [key, declaration] of declarations) {
        if (visible(declaration, principal))
          state.registered.set(key, declaration.register(mcp, state.caller));
      }
      // Only with a resource to read: the capability would make clients ask for lists this instance has no
      // handler for. (A session that gains its first resource later subscribes from its next session on.)
      if (
        instanceOptions.era === 'legacy' &&
        [...state.registered.keys()].some((k) => k.startsWith('resource:'))
      )
        acceptSubscriptions(mcp, state);
      return mcp;
    },
    sync(mcp, principal) {
      const state = states.get(mcp);
      if (state === undefined) throw new TypeError('sync: this McpServer was not made by instance()');
      state.caller.principal = principal;
      let changed = false;
      for (const [key, declaration] of declarations) {
        const shown = state.registered.get(key);
        const should = visible(declaration, principal);
        if (should && shown === undefined) {
          state.registered.set(key, declaration.register(mcp, state.caller));
          changed = true;
        } else if (!should && shown !== undefined) {
          // Removed, not disabled: the SDK answers a disabled tool differently from an unknown one.
          shown.remove();
          state.registered.delete(key);
          changed = true;
        }
      }
      return changed;
    },
    factory: (ctx) => server.instance(principalFrom(ctx)),
    primitives: {
      resource: (uri) => {
        for (const declaration of declarations.values())
          if (declaration.kind === 'resource' && declaration.names?.(uri)) return primitive(declaration);
        return undefined;
      },
      prompt: (name) => primitive(declarations.get(`prompt:${name}`)),
    },
    get scopesSupported() {
      return Object.freeze([...scopes]);
    },
  };
  return server;
}

/**
 * The decision for a tool call: the request pipeline's when it took one for this request (HTTP: decided and
 * audited once), else decided and audited here (stdio, the SDK's own entries). A refusal is an `isError`
 * result naming the code; `undefined` lets the handler run.
 */
function decideCall(
  authsec: AuthSec,
  name: string,
  args: Record<string, unknown>,
  principal: Principal | undefined,
  sdk: ServerContext,
): CallToolResult | undefined {
  if (principal === undefined)
    return errorResult('Authentication required', {
      'authsec/error': { code: 'TOKEN_MISSING' },
    }) as CallToolResult;
  const decided = decidedFor(sdk, 'tool.call', name);
  try {
    if (decided !== undefined) {
      if (decided.error !== undefined) throw decided.error;
    } else {
      authsec.authorizeTool(principal, { tool: name, arguments: args });
    }
    return undefined;
  } catch (error) {
    return failure(authsec, name, error);
  }
}

function failure(authsec: AuthSec, name: string, error: unknown): CallToolResult {
  if (isAuthSecError(error)) {
    if (error.code === 'SERVICE_UNAVAILABLE') {
      authsec.logger.warn('A dependency is unavailable; the call was refused', { tool: echo(name) });
      return errorResult('The service is temporarily unavailable; try again later.', {
        'authsec/error': { code: 'SERVICE_UNAVAILABLE' },
      }) as CallToolResult;
    }
    if (error.expose) return refusalResult(error as AuthSecError) as CallToolResult;
  }
  authsec.logger.error('Tool failed', { tool: echo(name), cause: String(error) });
  return errorResult('Tool failed') as CallToolResult;
}

export { ResourceTemplate };
