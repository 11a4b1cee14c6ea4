import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type Server as NodeHttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuthSec, type Principal, toErrorResponse } from '@authsec/core';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { type AuthSecMcpServer, PRINCIPAL_AUTH_KEY } from './server.js';

/** Options of {@link createMcpHttpHandler}. */
export interface McpHttpHandlerOptions {
  /** The server whose connections this endpoint serves. */
  readonly server: AuthSecMcpServer;
  /** The engine that authenticates every request (the same one the server uses). */
  readonly authsec: AuthSec;
  /**
   * The canonical URL of the MCP endpoint, e.g. `https://mcp.example.com/mcp`: tokens must carry it as `aud`
   * (configure the engine's `audience` with it). Its path is where MCP is served; the RFC 9728 metadata is
   * served at `/.well-known/oauth-protected-resource<path>` and at `/.well-known/oauth-protected-resource`.
   */
  readonly resourceUrl: string;
  /** Issuers clients may get tokens from, for the metadata's `authorization_servers` (at least one). */
  readonly authorizationServers: readonly string[];
  /** `scopes_supported` and the 401 challenge's `scope`. Default: the scopes the server's tools name. */
  readonly scopesSupported?: readonly string[];
  /** `resource_name` of the metadata. Default: the server's name. */
  readonly resourceName?: string;
  /**
   * Stateless mode: one SDK `Server` per request, no `Mcp-Session-Id`, no GET stream (no notifications), for
   * load-balanced deployments. Default `false`: one server per MCP session, bound to the subject that opened it.
   */
  readonly stateless?: boolean;
  /**
   * Lets requests without a bearer token through, so that clients without OAuth support can use the login
   * tools; the MCP session then is the credential. Loopback clients only, stateful only. Default `false`.
   */
  readonly allowToolLogin?: boolean;
  /**
   * `Origin` values accepted (DNS-rebinding protection); a request with another `Origin` is refused (403).
   * Requests without `Origin` (non-browser clients) pass. Default: the resource URL's origin, plus its
   * `localhost` / `127.0.0.1` / `[::1]` aliases when it is a loopback URL.
   */
  readonly allowedOrigins?: readonly string[];
  /** Largest request body, bytes; larger is 413. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** A session unused for this long is closed (clients reinitialize on the 404 that follows). Default 30 min. */
  readonly sessionIdleTimeoutMs?: number;
  /**
   * Answers requests for other paths (for example the login's OAuth callback route). Not authenticated by this
   * handler. Default: 404.
   */
  readonly fallback?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** A `node:http` request listener serving MCP and the protected resource metadata. */
export interface McpHttpHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** The RFC 9728 metadata URL (path form) put into challenges. */
  readonly resourceMetadataUrl: string;
  /** The number of live MCP sessions (stateful mode). */
  readonly sessionCount: number;
  /** Closes every session. */
  close(): Promise<void>;
}

interface Session {
  readonly transport: StreamableHTTPServerTransport;
  readonly server: Server;
  /** Who opened it: issuer, tenant and subject, or `null` for a tool-login session opened without a token. */
  readonly owner: string | null;
  lastSeen: number;
}

const METADATA_PREFIX = '/.well-known/oauth-protected-resource';
const DEFAULT_MAX_BODY = 1024 * 1024;
const DEFAULT_IDLE_MS = 30 * 60 * 1000;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Whether a host name or address is the loopback interface. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || host.startsWith('127.') || host === '::ffff:127.0.0.1';
}

function canonicalResource(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`resourceUrl: not a valid URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new TypeError('resourceUrl: must be http(s)');
  if (url.hash !== '' || value.includes('#')) throw new TypeError('resourceUrl: must not have a fragment');
  if (url.search !== '') throw new TypeError('resourceUrl: must not have a query');
  if (url.pathname.length > 1 && url.pathname.endsWith('/'))
    throw new TypeError('resourceUrl: must not end with a slash');
  return url;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...headers,
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

function sendRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers?: Record<string, string>,
): void {
  send(res, status, { jsonrpc: '2.0', error: { code, message }, id: null }, headers);
}

type BodyResult = { ok: true; value: unknown } | { ok: false };

function readJsonBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<BodyResult> {
  const tooLarge = (): BodyResult => {
    sendRpcError(res, 413, -32000, `Request body larger than ${max} bytes`, { connection: 'close' });
    // Discard the rest rather than reset the socket, so the client reads the 413; the connection then closes.
    req.resume();
    return { ok: false };
  };
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.resolve(tooLarge());
  return new Promise<BodyResult>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: BodyResult) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) finish(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => {
      try {
        finish({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      } catch {
        sendRpcError(res, 400, -32700, 'Parse error: the body is not valid JSON');
        finish({ ok: false });
      }
    };
    const onError = () => {
      if (!res.headersSent) sendRpcError(res, 400, -32000, 'The request body could not be read');
      finish({ ok: false });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function containsInitialize(body: unknown): boolean {
  return Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body);
}

function ownerOf(principal: Principal | undefined): string | null {
  return principal ? JSON.stringify([principal.issuer, principal.tenantId, principal.subject]) : null;
}

function bearerToken(authorization: string): string {
  return authorization.trim().replace(/^Bearer +/i, '');
}

/**
 * The Streamable HTTP MCP endpoint as a `node:http` listener. Every request is authenticated by its own bearer
 * token (a session never authenticates): a missing or bad token is 401 with an RFC 6750 challenge naming the
 * RFC 9728 metadata URL; an unreachable key set or database is 503. The verified principal reaches the server
 * as `req.auth.extra.principal`, so `tools/list` is computed per request.
 *
 * Stateful sessions are bound to the issuer, tenant and subject that created them. A request presenting a
 * session id with another subject gets the same 404 "Session not found" as an unknown id: nothing tells
 * it the session exists, and spec-following clients recover by initializing a new session of their own.
 *
 * Also: `Origin` validation (403), a body limit (413), 400 for malformed JSON, 405 for other methods.
 * Misconfiguration is a `TypeError` here.
 */
export function createMcpHttpHandler(options: McpHttpHandlerOptions): McpHttpHandler {
  const { server, authsec } = options;
  const resource = canonicalResource(options.resourceUrl);
  const resourceUrl = resource.pathname === '/' ? resource.origin : `${resource.origin}${resource.pathname}`;
  const mcpPath = resource.pathname;
  const pathMetadata = `${METADATA_PREFIX}${mcpPath === '/' ? '' : mcpPath}`;
  const resourceMetadataUrl = `${resource.origin}${pathMetadata}`;
  const authorizationServers = [...(options.authorizationServers ?? [])];
  if (authorizationServers.length === 0) {
    throw new TypeError('createMcpHttpHandler: authorizationServers needs at least one issuer URL');
  }
  const stateless = options.stateless === true;
  const allowToolLogin = options.allowToolLogin === true;
  if (allowToolLogin && stateless) {
    throw new TypeError(
      'createMcpHttpHandler: allowToolLogin needs sessions; it cannot be used with stateless',
    );
  }
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  if (!Number.isInteger(maxBody) || maxBody <= 0)
    throw new TypeError('maxBodyBytes must be a positive integer');
  const idleMs = options.sessionIdleTimeoutMs ?? DEFAULT_IDLE_MS;
  const scopes = [...(options.scopesSupported ?? server.scopesSupported)].filter(
    (s) => s !== 'offline_access',
  );
  const allowedOrigins = new Set(options.allowedOrigins ?? defaultOrigins(resource));
  const metadata = JSON.stringify({
    resource: resourceUrl,
    authorization_servers: authorizationServers,
    scopes_supported: scopes,
    bearer_methods_supported: ['header'],
    resource_name: options.resourceName ?? server.name,
  });
  const challenge = { resourceMetadataUrl, scopes };
  const logger = authsec.logger;
  const sessions = new Map<string, Session>();

  const sweep = setInterval(
    () => {
      const cutoff = Date.now() - idleMs;
      for (const [id, session] of sessions) if (session.lastSeen < cutoff) void closeSession(id, session);
    },
    Math.min(idleMs, 60_000),
  );
  sweep.unref();

  const closeSession = async (id: string, session: Session): Promise<void> => {
    if (sessions.get(id) === session) sessions.delete(id);
    await Promise.allSettled([session.transport.close(), session.server.close()]);
  };

  const serveMetadata = (req: IncomingMessage, res: ServerResponse): void => {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, OPTIONS' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD, OPTIONS' });
      return;
    }
    res.writeHead(200, {
      ...cors,
      'content-type': 'application/json',
      'cache-control': 'public, max-age=300',
      'content-length': String(Buffer.byteLength(metadata)),
    });
    res.end(req.method === 'HEAD' ? undefined : metadata);
  };

  const handleStateless = async (req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> => {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    const mcp = server.createServer(`http-${randomUUID()}`);
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleStateful = async (
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    principal: Principal | undefined,
  ): Promise<void> => {
    const header = req.headers['mcp-session-id'];
    const sessionId = Array.isArray(header) ? header[0] : header;
    const owner = ownerOf(principal);
    if (sessionId === undefined) {
      if (req.method !== 'POST' || !containsInitialize(body)) {
        sendRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
        return;
      }
      const id = randomUUID();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
      const mcp = server.createServer(id);
      const session: Session = { transport, server: mcp, owner, lastSeen: Date.now() };
      transport.onclose = () => {
        if (sessions.get(id) === session) sessions.delete(id);
      };
      sessions.set(id, session);
      await mcp.connect(transport);
      await transport.handleRequest(req, res, body);
      // A refused initialize leaves a transport without a session: drop it rather than keep it forever.
      if (transport.sessionId === undefined) await closeSession(id, session);
      return;
    }
    const session = sessions.get(sessionId);
    if (session === undefined || session.owner !== owner) {
      if (session !== undefined) {
        logger.warn('An MCP session id was presented by another subject; refused', { status: 404 });
        authsec.audit({
          action: 'authenticate',
          decision: 'deny',
          ...(principal ? { principal } : {}),
          target: 'mcp-session',
          reason: 'PERMISSION_DENIED',
        });
      }
      sendRpcError(res, 404, -32001, 'Session not found');
      return;
    }
    session.lastSeen = Date.now();
    await session.transport.handleRequest(req, res, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === pathMetadata || path === METADATA_PREFIX) return serveMetadata(req, res);
    if (path !== mcpPath) {
      if (options.fallback) return options.fallback(req, res);
      return send(res, 404, { error: 'not_found' });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) {
      return sendRpcError(res, 403, -32000, 'Forbidden: Origin not allowed');
    }
    const allowed = stateless ? ['POST'] : ['GET', 'POST', 'DELETE'];
    if (!allowed.includes(req.method ?? '')) {
      return sendRpcError(res, 405, -32000, 'Method not allowed', { allow: allowed.join(', ') });
    }

    const authorization = req.headers.authorization;
    let principal: Principal | undefined;
    const anonymousAllowed =
      allowToolLogin && authorization === undefined && isLoopbackHost(req.socket.remoteAddress ?? '');
    if (!anonymousAllowed) {
      try {
        principal = await authsec.authenticateHeader(authorization);
      } catch (error) {
        const response = toErrorResponse(error, challenge);
        return send(res, response.status, response.body, { ...response.headers });
      }
    }

    let body: unknown;
    if (req.method === 'POST') {
      const read = await readJsonBody(req, res, maxBody);
      if (!read.ok) return;
      body = read.value;
    }
    if (principal !== undefined && authorization !== undefined) {
      const auth: AuthInfo = {
        token: bearerToken(authorization),
        clientId: principal.clientId ?? '',
        scopes: [...principal.scopes],
        expiresAt: principal.expiresAt,
        resource,
        extra: { [PRINCIPAL_AUTH_KEY]: principal },
      };
      (req as IncomingMessage & { auth?: AuthInfo }).auth = auth;
    }
    if (stateless) return handleStateless(req, res, body);
    return handleStateful(req, res, body, principal);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      logger.error('MCP HTTP request failed', { cause: String(error) });
      if (!res.headersSent) sendRpcError(res, 500, -32603, 'Internal error');
      else res.end();
    });
  };

  // defineProperties, not Object.assign: assign would copy the getter's value once instead of the getter.
  return Object.defineProperties(handler, {
    resourceMetadataUrl: { value: resourceMetadataUrl, enumerable: true },
    sessionCount: { get: () => sessions.size, enumerable: true },
    close: {
      value: async (): Promise<void> => {
        clearInterval(sweep);
        await Promise.allSettled([...sessions].map(([id, s]) => closeSession(id, s)));
      },
    },
  }) as McpHttpHandler;
}

function defaultOrigins(resource: URL): string[] {
  const origins = [resource.origin];
  if (isLoopbackHost(resource.hostname)) {
    const port = resource.port === '' ? '' : `:${resource.port}`;
    for (const host of ['localhost', '127.0.0.1', '[::1]'])
      origins.push(`${resource.protocol}//${host}${port}`);
  }
  return [...new Set(origins)];
}

/** Options of {@link startHttpServer}: the handler's, with where to listen. */
export interface StartHttpServerOptions extends Omit<McpHttpHandlerOptions, 'resourceUrl'> {
  /** Interface to bind. Default `127.0.0.1`; anything else logs a warning (and forbids `allowToolLogin`). */
  readonly host?: string;
  /** Port; `0` picks a free one. Default `0`. */
  readonly port?: number;
  /** The canonical MCP URL. Default `http://<host>:<port>/mcp`. */
  readonly resourceUrl?: string;
}

/** A listening MCP HTTP server. */
export interface RunningHttpServer {
  /** The MCP endpoint URL (the resource URL). */
  readonly url: string;
  /** The RFC 9728 metadata URL (path form). */
  readonly resourceMetadataUrl: string;
  /** The request listener. */
  readonly handler: McpHttpHandler;
  /** The underlying `node:http` server. */
  readonly httpServer: NodeHttpServer;
  /** Closes every session and stops listening (open streams are ended). */
  close(): Promise<void>;
}

/**
 * Starts {@link createMcpHttpHandler} on a `node:http` server, bound to 127.0.0.1 unless told otherwise.
 * Returns once listening.
 */
export async function startHttpServer(options: StartHttpServerOptions): Promise<RunningHttpServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopbackHost(host);
  if (options.allowToolLogin && !loopback) {
    throw new TypeError(`startHttpServer: allowToolLogin is only allowed on a loopback host, not '${host}'`);
  }
  const logger = options.authsec.logger;
  if (!loopback) {
    logger.warn(
      `Listening on ${host}: reachable from other machines; bind 127.0.0.1 unless that is intended`,
      {
        option: 'host',
      },
    );
  }
  if (options.allowToolLogin) {
    logger.warn(
      'Tool-based login over HTTP is enabled: requests without a token are accepted from loopback clients and the MCP session becomes the credential',
      { option: 'allowToolLogin' },
    );
  }
  const httpServer = createServer();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const resourceUrl = options.resourceUrl ?? `http://${urlHost}:${port}/mcp`;
  let handler: McpHttpHandler;
  try {
    handler = createMcpHttpHandler({ ...options, resourceUrl });
  } catch (error) {
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    throw error;
  }
  httpServer.on('request', handler);
  let closing: Promise<void> | undefined;
  return {
    url: resourceUrl,
    resourceMetadataUrl: handler.resourceMetadataUrl,
    handler,
    httpServer,
    close() {
      closing ??= (async () => {
        await handler.close();
        await new Promise<void>((resolve) => {
          httpServer.close(() => resolve());
          httpServer.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
