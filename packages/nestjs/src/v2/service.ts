import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthSec, ResourceServer } from '@authsec/core';
import {
  bodyParserFailure,
  createMcpV2Adapter,
  type McpEndpoint,
  type McpEndpointRequest,
  type ProtectedMcpServer,
  protect,
  requestPath,
} from '@authsec/mcp/v2';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, MetadataScanner, Reflector } from '@nestjs/core';
import { AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER, DEFAULT_SERVER_NAME } from '../authsec.constants.js';
import { discoverMethods } from '../authsec.discovery.js';
import { AUTHSEC_PRIMITIVE_METADATA, type AuthSecPrimitiveMetadata } from './decorators.js';
import { AUTHSEC_V2_OPTIONS } from './module-options.js';
import type { AuthSecV2ModuleOptions } from './options.js';

type Routes = ReturnType<typeof createMcpV2Adapter>['routes'];
type Next = (error?: unknown) => void;

/** The subset of the Express application this service touches. */
interface ExpressLike {
  use(handler: (req: ExpressRequest, res: ServerResponse, next: Next) => void): unknown;
  use(handler: (error: unknown, req: ExpressRequest, res: ServerResponse, next: Next) => void): unknown;
}
type ExpressRequest = McpEndpointRequest & { originalUrl?: string };

/**
 * Discovers the `@AuthSecTool`, `@AuthSecResource` and `@AuthSecPrompt` methods when the module starts,
 * declares them on one protected server, and mounts the endpoint (both eras), the metadata documents and
 * health on the platform, after everything the application mounted before it: on Express as middleware at the
 * end of the stack (Nest's body parser has read the body; what it failed on is answered as the endpoint's own
 * 400 and 413), on Fastify as ordinary routes (`@authsec/fastify/v2`) under the application's hooks.
 */
@Injectable()
export class AuthSecMcpService implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('AuthSecModule');
  private protectedServer: ProtectedMcpServer | undefined;
  private endpoint: McpEndpoint | undefined;

  constructor(
    @Inject(AUTHSEC_V2_OPTIONS) private readonly options: AuthSecV2ModuleOptions,
    @Inject(AUTHSEC_ENGINE) private readonly authsec: AuthSec,
    @Inject(AUTHSEC_RESOURCE_SERVER) readonly resourceServer: ResourceServer,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  /** The protected server (`undefined` before start, or with `mcp: false`). */
  get server(): ProtectedMcpServer | undefined {
    return this.protectedServer;
  }

  /** The number of live legacy-era MCP sessions. */
  get sessionCount(): number {
    return this.endpoint?.sessionCount ?? 0;
  }

  async onModuleInit(): Promise<void> {
    const { options, authsec } = this;
    if (options.mcp === false) return;
    const server =
      options.server ??
      protect(
        authsec,
        { name: options.name ?? DEFAULT_SERVER_NAME, version: options.version ?? '1.0.0' },
        {
          ...(options.services === undefined ? {} : { services: options.services }),
          ...(options.serverOptions === undefined ? {} : { serverOptions: options.serverOptions }),
        },
      );
    this.declareDiscovered(server);
    this.protectedServer = server;
    const adapter = createMcpV2Adapter({ ...options, server, authsec }, 'AuthSecModule', this.resourceServer);
    this.endpoint = adapter.endpoint;
    await this.mount(adapter.routes);
  }

  async onModuleDestroy(): Promise<void> {
    // Before the HTTP server closes: open streams would otherwise keep it from closing.
    await this.endpoint?.close();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.authsec.close();
  }

  private declareDiscovered(server: ProtectedMcpServer): void {
    const found = discoverMethods<AuthSecPrimitiveMetadata>(
      this.discovery,
      this.scanner,
      this.reflector,
      AUTHSEC_PRIMITIVE_METADATA,
    );
    for (const { meta, call } of found) {
      if (meta.kind === 'tool') server.registerTool(meta.name, meta.config, call as never);
      else if (meta.kind === 'resource')
        server.registerResource(meta.name, meta.uri, meta.config, call as never);
      else server.registerPrompt(meta.name, meta.config, call as never);
    }
  }

  private async mount(routes: Routes): Promise<void> {
    const adapter = this.adapterHost.httpAdapter;
    if (!adapter) {
      this.logger.warn('No HTTP adapter: the MCP endpoint is not served (create a Nest HTTP application).');
      return;
    }
    if (adapter.getType() === 'fastify') {
      // Ordinary Fastify routes in their own context: the application's hooks and plugins run on them.
      const { registerAuthSecRoutes } = await import('@authsec/fastify/v2');
      await registerAuthSecRoutes(adapter.getInstance(), routes);
      return;
    }
    if (adapter.getType() !== 'express')
      this.logger.warn(`Unknown platform '${adapter.getType()}': mounted as Express middleware.`);
    const app = adapter.getInstance<ExpressLike>();
    const answer = (req: ExpressRequest, res: ServerResponse) =>
      routes(req as IncomingMessage, res, requestPath(req.originalUrl ?? req.url), req.originalUrl);
    // At the end of the stack, in the order the application mounted its own middleware: nothing is moved.
    app.use((req, res, next) => {
      if (!answer(req, res)) next();
    });
    // Nest's JSON parser ran first: a body it could not parse, or over its limit, is the endpoint's 400 or 413.
    app.use((error: unknown, req: ExpressRequest, res: ServerResponse, next: Next) => {
      const failure = bodyParserFailure(error);
      if (failure === undefined) return next(error);
      req.bodyFailure = failure;
      if (!answer(req, res)) next(error);
    });
  }
}
