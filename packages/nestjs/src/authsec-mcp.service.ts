import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthSec, ResourceServer } from '@authsec/core';
import {
  type AuthSecMcpServer,
  createAuthSecServer,
  createMcpAdapter,
  type McpEndpoint,
  type McpRoutes,
  type AuthSecTool as McpTool,
  protect,
  type ToolHandler,
} from '@authsec/mcp';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, MetadataScanner, Reflector } from '@nestjs/core';
import {
  AUTHSEC_ENGINE,
  AUTHSEC_MODULE_OPTIONS,
  AUTHSEC_RESOURCE_SERVER,
  AUTHSEC_TOOL_METADATA,
  DEFAULT_SERVER_NAME,
} from './authsec.constants.js';
import type { AuthSecToolMetadata } from './authsec.decorators.js';
import { discoverMethods } from './authsec.discovery.js';
import type { AuthSecModuleOptions } from './authsec.options.js';

/** The subset of the Express application this service touches. */
interface ExpressLike {
  use(handler: (req: IncomingMessage, res: ServerResponse, next: () => void) => void): unknown;
  router?: { stack?: unknown[] };
}

/** The subset of the Fastify instance this service touches. */
interface FastifyLike {
  addHook(
    name: 'onRequest',
    hook: (
      request: { raw: IncomingMessage },
      reply: { raw: ServerResponse; hijack(): void },
    ) => Promise<void>,
  ): unknown;
}

/**
 * Discovers the `@AuthSecTool` methods when the module starts, serves them through one `createAuthSecServer`,
 * and mounts the MCP endpoint, the metadata documents and the health routes on the platform's raw
 * request/response objects, ahead of Nest's body parsers (the endpoint reads and limits the body itself).
 */
@Injectable()
export class AuthSecMcpService implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('AuthSecModule');
  private server: AuthSecMcpServer | undefined;
  private endpoint: McpEndpoint | undefined;
  private discovered: readonly McpTool[] = [];

  constructor(
    @Inject(AUTHSEC_MODULE_OPTIONS) private readonly options: AuthSecModuleOptions,
    @Inject(AUTHSEC_ENGINE) private readonly authsec: AuthSec,
    @Inject(AUTHSEC_RESOURCE_SERVER) readonly resourceServer: ResourceServer,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  /** The tools discovered from `@AuthSecTool` methods, in discovery order. */
  get tools(): readonly McpTool[] {
    return this.discovered;
  }

  /** The MCP server (`undefined` before start, or with `mcp: false`). */
  get mcpServer(): AuthSecMcpServer | undefined {
    return this.server;
  }

  /** The number of live MCP sessions. */
  get sessionCount(): number {
    return this.endpoint?.sessionCount ?? 0;
  }

  onModuleInit(): void {
    this.discovered = this.discoverTools();
    if (this.options.mcp === false) return;
    const { options } = this;
    this.server = createAuthSecServer({
      name: options.name ?? DEFAULT_SERVER_NAME,
      version: options.version ?? '1.0.0',
      tools: [...(options.tools ?? []), ...this.discovered],
      authsec: this.authsec,
      ...(options.services === undefined ? {} : { services: options.services }),
      ...(options.directory === undefined ? {} : { directory: options.directory }),
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
    });
    const { endpoint, routes } = createMcpAdapter(
      { ...options, server: this.server, authsec: this.authsec },
      'AuthSecModule',
      this.resourceServer,
    );
    this.endpoint = endpoint;
    this.mount(routes);
  }

  async onModuleDestroy(): Promise<void> {
    // Before the HTTP server closes: open GET streams would otherwise keep it from closing.
    await this.endpoint?.close();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.server) await this.server.close();
    else if (this.options.authsec !== this.authsec) await this.authsec.close();
  }

  private discoverTools(): McpTool[] {
    const found = discoverMethods<AuthSecToolMetadata>(
      this.discovery,
      this.scanner,
      this.reflector,
      AUTHSEC_TOOL_METADATA,
    );
    return found.map(({ meta, call }) =>
      protect(meta.name, meta.requirement, call as ToolHandler<unknown>, {
        ...(meta.options.description === undefined ? {} : { description: meta.options.description }),
        ...(meta.options.inputSchema === undefined ? {} : { inputSchema: meta.options.inputSchema }),
        ...(meta.options.annotations === undefined ? {} : { annotations: meta.options.annotations }),
      }),
    );
  }

  private mount(routes: McpRoutes): void {
    const adapter = this.adapterHost.httpAdapter;
    if (!adapter) {
      this.logger.warn('No HTTP adapter: the MCP endpoint is not served (create a Nest HTTP application).');
      return;
    }
    const type = adapter.getType();
    if (type === 'fastify') {
      const fastify = adapter.getInstance<FastifyLike>();
      // onRequest runs before Fastify's content-type parsing: the endpoint reads the raw body itself.
      fastify.addHook('onRequest', async (request, reply) => {
        // A route answered on the raw objects: Fastify must not answer too.
        if (routes(request.raw, reply.raw)) reply.hijack();
      });
      return;
    }
    const app = adapter.getInstance<ExpressLike>();
    app.use((req, res, next) => {
      if (!routes(req, res)) next();
    });
    // Nest registered its JSON parser already; the endpoint must see the raw stream (its own 400 parse error and
    // 413 limit), so this layer goes first.
    const stack = app.router?.stack;
    if (Array.isArray(stack) && stack.length > 1) stack.unshift(stack.pop());
    if (type !== 'express') this.logger.warn(`Unknown platform '${type}': mounted as Express middleware.`);
  }
}
