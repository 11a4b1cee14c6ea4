import { once } from 'node:events';
import { createServer } from 'node:http';
import { createMcpV2HttpHandler, type McpV2HttpHandlerOptions } from '../../src/v2/index.js';

/** The shape of `defineAdapterConformanceV2` of the private `@authsec/adapter-conformance` package. */
type DefineConformance = (
  name: string,
  start: (ctx: {
    host: string;
    port: number;
    options: Omit<McpV2HttpHandlerOptions, 'fallback'> & { resourceUrl: string };
  }) => Promise<{ url: string; close(): Promise<void> }>,
) => void;

// Loaded by path from its source, not by package name: @authsec/adapter-conformance depends on @authsec/mcp, and
// a dependency back would make the workspace graph cyclic. A variable specifier keeps tsc out of it.
const suite = new URL('../../../adapter-conformance/src/v2.ts', import.meta.url).href;
const { defineAdapterConformanceV2, APP_HOOK_HEADER } = (await import(suite)) as {
  defineAdapterConformanceV2: DefineConformance;
  APP_HOOK_HEADER: string;
};

defineAdapterConformanceV2('@authsec/mcp/v2 node:http handler', async ({ host, port, options }) => {
  const handler = createMcpV2HttpHandler(options);
  // The application's own step ahead of the handler, as a plain node:http server has it.
  const server = createServer((req, res) => {
    res.setHeader(APP_HOOK_HEADER, '1');
    handler(req, res);
  }).listen(port, host);
  await once(server, 'listening');
  return {
    url: options.resourceUrl,
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
});
