import {
  type AuthSec,
  type AuthSecError,
  type DirectoryChange,
  decisionFor,
  isAuthSecError,
  noServiceAccess,
  type Principal,
  type PrincipalDirectory,
  requiredScopes,
  type ServiceAccess,
  type ToolDefinition,
} from '@authsec/core';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  type LoggingLevel,
  LoggingLevelSchema,
  McpError,
  type ServerNotification,
  type ServerRequest,
  SetLevelRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { USER_INFO_KEY } from './input-schema.js';
import { ERROR_META_KEY, errorResult, refusalResult } from './result.js';
import type { AuthSecTool, LoginProvider, PublicToolContext, ToolContext, ToolResult } from './types.js';
import { toUserInfo } from './user-info.js';

/** The key of `AuthInfo.extra` under which the HTTP layer hands the verified principal to the server. */
export const PRINCIPAL_AUTH_KEY = 'principal';

/** Options of {@link createAuthSecServer}. */
export interface AuthSecServerOptions {
  /** Server name reported at initialization. */
  readonly name: string;
  /** Server version reported at initialization. */
  readonly version: string;
  /** The tools, built with `protect()` and `publicTool()`. Names must be unique (`TypeError` otherwise). */
  readonly tools: readonly AuthSecTool[];
  /** The engine: verifies, decides, audits. {@link AuthSecMcpServer.close} closes it. */
  readonly authsec: AuthSec;
  /**
   * The tool-based login (the `oauth_*` tools) for callers without a bearer token: stdio, and HTTP clients
   * without OAuth support when explicitly allowed. Default: none (every caller comes with a verified token).
   */
  readonly login?: LoginProvider;
  /** The `services` of a tool's context for a caller. Default: `noServiceAccess` (reads fail, and say why). */
  readonly services?: (principal: Principal) => ServiceAccess;
  /**
   * The directory whose grant changes should refresh live callers' tool lists (`notifications/tools/list_changed`).
   * Pass the same directory as the engine's. Default: none (lists refresh on login changes only).
   */
  readonly directory?: PrincipalDirectory;
  /** Instructions for the model, sent at initialization. */
  readonly instructions?: string;
}

/** The AuthSec MCP server: a factory of SDK `Server`s (one per connection) that share tools and engine. */
export interface AuthSecMcpServer {
  /** The server name given at creation. */
  readonly name: string;
  /**
   * A new low-level SDK `Server` for one connection: stdio has one; HTTP has one per MCP session (stateful) or
   * per request (stateless). `connectionId` keys the tool-based login and notifications; a live id cannot be
   * reused (`TypeError`). Connect it to a transport; closing it forgets the connection.
   */
  createServer(connectionId: string): Server;
  /** Every tool this server offers: the login tools, then the declared tools. */
  readonly tools: readonly AuthSecTool[];
  /** Every scope the protected tools name (never `offline_access`), for `scopes_supported` and challenges. */
  readonly scopesSupported: readonly string[];
  /** Ids of the live connections. */
  connectionIds(): string[];
  /** Sends `notifications/tools/list_changed` to one connection, or to all. Never throws. */
  notifyToolListChanged(connectionId?: string): Promise<void>;
  /** Closes every connection, then the login provider and the engine (flushing audit). Idempotent. */
  close(): Promise<void>;
}

interface Connection {
  readonly server: Server;
  /** The last principal a request on this connection presented over HTTP. */
  principal: Principal | undefined;
  /** The lowest log level the client asked for (`logging/setLevel`); `undefined` until it asks. */
  logLevel: LoggingLevel | undefined;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** What a tool context carries of its request: cancellation, progress, notifications, requests, logs. */
type CallChannel = Pick<ToolContext, 'signal' | 'progressToken' | 'sendNotification' | 'sendRequest' | 'log'>;

/** Log levels by severity, lowest first (the SDK's order: debug ... emergency). */
const LOG_SEVERITY = new Map(LoggingLevelSchema.options.map((level, index) => [level, index]));

const MAX_ECHOED_NAME = 128;

function principalOf(extra: Extra): Principal | undefined {
  const value = extra.authInfo?.extra?.[PRINCIPAL_AUTH_KEY];
  if (typeof value === 'object' && value !== null && typeof (value as Principal).subject === 'string') {
    return value as Principal;
  }
  return undefined;
}

function echo(name: string): string {
  return name.length > MAX_ECHOED_NAME ? `${name.slice(0, MAX_ECHOED_NAME)}...` : name;
}

function describe(tool: AuthSecTool): Tool {
  return {
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description }),
    inputSchema: tool.inputSchema as Tool['inputSchema'],
    ...(tool.annotations === undefined ? {} : { annotations: tool.annotations as Tool['annotations'] }),
  };
}

/**
 * Creates the AuthSec MCP server. Protected tools are registered in `authsec.tools` here (once; a name already
 * registered for another tool is a `TypeError`), so misconfiguration fails at start.
 *
 * Per connection: `tools/list` shows the login tools, the public tools and the protected tools the caller
 * may use (the caller is the HTTP request's verified principal, else the login on that connection); every
 * `tools/call` is authorized again. Refusals are `isError` results with a clear reason and
 * `_meta['authsec/error'] = { code, scopes?, failed? }`; an unauthenticated caller gets the same answer for a
 * protected tool as for a name that does not exist, so hidden tools stay hidden.
 *
 * Each connection declares the `logging` capability and keeps the level its client sets with `logging/setLevel`;
 * a handler's `context.log` respects it, and `context.sendNotification` / `context.sendRequest` belong to the
 * call (progress, sampling, elicitation).
 */
export function createAuthSecServer(options: AuthSecServerOptions): AuthSecMcpServer {
  const { authsec, login } = options;
  if (typeof options.name !== 'string' || options.name === '')
    throw new TypeError('createAuthSecServer: name is required');
  if (typeof options.version !== 'string' || options.version === '')
    throw new TypeError('createAuthSecServer: version is required');
  if (!Array.isArray(options.tools)) throw new TypeError('createAuthSecServer: tools must be an array');
  if (typeof authsec?.authorizeTool !== 'function')
    throw new TypeError('createAuthSecServer: authsec must be an engine from createAuthSec()');
  const logger = authsec.logger;

  const all: AuthSecTool[] = [...(login?.tools ?? []), ...options.tools];
  const byName = new Map<string, AuthSecTool>();
  const definitions = new Map<string, ToolDefinition>();
  for (const tool of all) {
    if (byName.has(tool.name)) throw new TypeError(`Tool '${tool.name}' is declared twice`);
    byName.set(tool.name, tool);
    if (tool.public) continue;
    const existing = authsec.tools.get(tool.name);
    if (existing !== undefined && existing.meta !== tool) {
      throw new TypeError(`Tool '${tool.name}' is already registered in this engine for another tool`);
    }
    definitions.set(tool.name, existing ?? authsec.tools.register(tool.name, tool.requirement, tool));
  }
  const descriptors = new Map(all.map((tool) => [tool.name, describe(tool)]));
  const publicDescriptors = all.filter((t) => t.public).map((t) => descriptors.get(t.name)!);
  const scopes = new Set<string>();
  for (const definition of definitions.values()) {
    for (const scope of requiredScopes(definition.requirement))
      if (scope !== 'offline_access') scopes.add(scope);
  }
  const scopesSupported = Object.freeze([...scopes]);

  const live = new Map<string, Connection>();
  let closed = false;
  const authenticationRequired = login
    ? 'Authentication required: call oauth_start to log in, then call this tool again.'
    : 'Authentication required.';

  const notify = async (connectionId: string): Promise<void> => {
    const connection = live.get(connectionId);
    if (!connection) return;
    try {
      await connection.server.sendToolListChanged();
    } catch (cause) {
      // The transport may be gone or not yet connected; the next tools/list is computed afresh anyway.
      logger.debug('Could not send tools/list_changed', { connectionId, cause: String(cause) });
    }
  };

  const currentPrincipal = async (connectionId: string, connection: Connection) => {
    if (connection.principal) return connection.principal;
    if (!login) return undefined;
    return login.principalFor(connectionId).catch(() => undefined);
  };

  const onDirectoryChange = (change: DirectoryChange): void => {
    for (const [connectionId, connection] of live) {
      if (change.tenantId === null) {
        void notify(connectionId);
        continue;
      }
      void currentPrincipal(connectionId, connection).then((principal) => {
        if (!principal || principal.tenantId !== change.tenantId) return;
        if (change.subject !== null && change.subject !== principal.subject) return;
        return notify(connectionId);
      });
    }
  };
  const stopLogin = login?.onChange((connectionId) => void notify(connectionId));
  const stopDirectory = options.directory?.subscribe?.(onDirectoryChange);

  /** The caller of a request: its verified HTTP principal, else the login on this connection. */
  const callerOf = async (connectionId: string, extra: Extra): Promise<Principal | undefined> => {
    const fromRequest = principalOf(extra);
    if (fromRequest) {
      const connection = live.get(connectionId);
      if (connection) connection.principal = fromRequest;
      return fromRequest;
    }
    return login ? login.principalFor(connectionId) : undefined;
  };

  const channelOf = (connectionId: string, extra: Extra): CallChannel => ({
    signal: extra.signal,
    progressToken: extra._meta?.progressToken,
    sendNotification: extra.sendNotification,
    // The SDK does not tie a request sent on behalf of a call to that call's cancellation; this does.
    sendRequest: ((request, resultSchema, requestOptions) =>
      extra.sendRequest(request, resultSchema, {
        signal: extra.signal,
        ...requestOptions,
      })) as Extra['sendRequest'],
    async log(level, data, logger) {
      const threshold = live.get(connectionId)?.logLevel;
      if (threshold !== undefined && LOG_SEVERITY.get(level)! < LOG_SEVERITY.get(threshold)!) return;
      await extra.sendNotification({
        method: 'notifications/message',
        params: { level, data, ...(logger === undefined ? {} : { logger }) },
      });
    },
  });

  const servicesFor = (principal: Principal | undefined): ServiceAccess =>
    principal && options.services ? options.services(principal) : noServiceAccess;

  const unavailable = (tool: string, error: AuthSecError | undefined): ToolResult => {
    logger.warn('A dependency is unavailable; the call was refused', {
      tool,
      ...(error ? { cause: String(error.cause ?? error.message) } : {}),
    });
    return errorResult('The service is temporarily unavailable; try again later.', {
      [ERROR_META_KEY]: { code: 'SERVICE_UNAVAILABLE' },
    });
  };

  const failure = (tool: string, error: unknown): ToolResult => {
    if (isAuthSecError(error)) {
      if (error.code === 'SERVICE_UNAVAILABLE') return unavailable(tool, error);
      if (error.expose) return refusalResult(error);
    }
    logger.error('Tool failed', {
      tool,
      cause: String(error),
      ...(error instanceof Error && error.stack ? { stack: error.stack } : {}),
    });
    return errorResult('Tool failed');
  };

  const unauthenticated = (target: string, args: unknown): ToolResult => {
    authsec.audit({
      action: 'tool.call',
      decision: 'deny',
      target,
      reason: 'TOKEN_MISSING',
      arguments: args,
    });
    return errorResult(authenticationRequired, { [ERROR_META_KEY]: { code: 'TOKEN_MISSING' } });
  };

  const callTool = async (
    connectionId: string,
    name: string,
    raw: Record<string, unknown>,
    extra: Extra,
  ): Promise<ToolResult> => {
    // A client-sent _user_info is dropped before anything (audit digest, validation, handler) sees it.
    const { [USER_INFO_KEY]: _forged, ...args } = raw;
    const tool = byName.get(name);
    let caller: Principal | undefined;
    let callerError: unknown;
    try {
      caller = await callerOf(connectionId, extra);
    } catch (error) {
      callerError = error;
    }
    const fromRequest = principalOf(extra) !== undefined;
    const sessionId = fromRequest ? extra.sessionId : (login?.sessionIdFor(connectionId) ?? extra.sessionId);

    if (tool === undefined || !tool.public) {
      if (callerError !== undefined) {
        return unavailable(echo(name), isAuthSecError(callerError) ? callerError : undefined);
      }
      // Without a caller, a protected tool and a name that does not exist answer alike: nothing is revealed.
      if (caller === undefined) return unauthenticated(echo(name), args);
      if (tool === undefined) {
        authsec.audit({
          action: 'tool.call',
          decision: 'deny',
          principal: caller,
          target: echo(name),
          reason: 'NOT_FOUND',
          arguments: args,
        });
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${echo(name)}`);
      }
      try {
        // Over HTTP the request pipeline has decided (and audited) this call already: never decide it twice.
        const decided = decisionFor(extra.authInfo, extra.requestId, 'tool.call', name);
        if (decided === undefined) authsec.authorizeTool(caller, { tool: name, arguments: args });
        else if (decided.error !== undefined) throw decided.error;
      } catch (error) {
        if (isAuthSecError(error) && error.code === 'INSUFFICIENT_SCOPE')
          return refusalResult(error, 'Insufficient scope');
        if (isAuthSecError(error) && error.code === 'PERMISSION_DENIED')
          return refusalResult(error, 'Permission denied');
        return failure(name, error);
      }
      try {
        const context: ToolContext = {
          user: toUserInfo(caller),
          principal: caller,
          tenant: caller.tenantId,
          sessionId,
          services: servicesFor(caller),
          ...channelOf(connectionId, extra),
        };
        const parsed = tool.parse(args);
        // After the requirement's decision, on the arguments the tool's schema validated: the tool's own
        // conditions and its tenant's (none at all costs no event).
        await authsec.checkConditions(caller, {
          target: name,
          requirement: definitions.get(tool.name)!.requirement,
          args: parsed as Record<string, unknown>,
        });
        return await tool.run(parsed, context);
      } catch (error) {
        return failure(name, error);
      }
    }

    if (callerError !== undefined) {
      // Public tools (the login tools among them) still run: they must work when nobody can be resolved.
      logger.warn('Could not resolve the caller of a public tool', {
        tool: name,
        cause: String(callerError),
      });
    }
    authsec.audit({
      action: 'tool.call',
      decision: 'allow',
      ...(caller ? { principal: caller } : {}),
      target: name,
      arguments: args,
    });
    try {
      const context: PublicToolContext = {
        user: caller ? toUserInfo(caller) : undefined,
        principal: caller,
        tenant: caller?.tenantId,
        sessionId,
        services: servicesFor(caller),
        ...channelOf(connectionId, extra),
        connectionId,
      };
      return await tool.run(tool.parse(args), context);
    } catch (error) {
      return failure(name, error);
    }
  };

  const listTools = async (connectionId: string, extra: Extra): Promise<Tool[]> => {
    let caller: Principal | undefined;
    try {
      caller = await callerOf(connectionId, extra);
    } catch (error) {
      // Fail closed: the list shrinks to what anyone may see, the login tools included.
      logger.warn('Could not resolve the caller; listing public tools only', { cause: String(error) });
    }
    if (caller === undefined) return publicDescriptors;
    authsec.audit({ action: 'tool.list', decision: 'allow', principal: caller });
    const tools: Tool[] = [];
    for (const tool of all) {
      if (tool.public || authsec.can(caller, definitions.get(tool.name)!.requirement)) {
        tools.push(descriptors.get(tool.name)!);
      }
    }
    return tools;
  };

  return {
    name: options.name,
    tools: Object.freeze(all),
    scopesSupported,
    createServer(connectionId) {
      if (typeof connectionId !== 'string' || connectionId === '')
        throw new TypeError('createServer: a connection id is required');
      if (closed) throw new Error('This AuthSec MCP server is closed');
      if (live.has(connectionId)) throw new TypeError(`Connection '${connectionId}' is already live`);
      const server = new Server(
        { name: options.name, version: options.version },
        {
          capabilities: { tools: { listChanged: true }, logging: {} },
          ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
        },
      );
      const connection: Connection = { server, principal: undefined, logLevel: undefined };
      // Replaces the SDK's own handler, which keys the level by session id; here it belongs to the connection.
      server.setRequestHandler(SetLevelRequestSchema, async (request) => {
        connection.logLevel = request.params.level;
        return {};
      });
      server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => ({
        tools: await listTools(connectionId, extra),
      }));
      server.setRequestHandler(
        CallToolRequestSchema,
        async (request, extra) =>
          (await callTool(
            connectionId,
            request.params.name,
            request.params.arguments ?? {},
            extra,
          )) as CallToolResult,
      );
      server.onclose = () => {
        if (live.get(connectionId)?.server !== server) return;
        live.delete(connectionId);
        login?.disconnect(connectionId);
      };
      live.set(connectionId, connection);
      return server;
    },
    connectionIds: () => [...live.keys()],
    async notifyToolListChanged(connectionId) {
      if (connectionId !== undefined) return notify(connectionId);
      await Promise.all([...live.keys()].map(notify));
    },
    async close() {
      if (closed) return;
      closed = true;
      stopLogin?.();
      stopDirectory?.();
      const servers = [...live.values()].map((c) => c.server);
      const results = await Promise.allSettled(servers.map((s) => s.close()));
      live.clear();
      results.push(...(await Promise.allSettled([login?.close()])));
      results.push(...(await Promise.allSettled([authsec.close()])));
      for (const result of results) {
        if (result.status === 'rejected')
          logger.error('Failed to close a resource', { cause: String(result.reason) });
      }
    },
  };
}
