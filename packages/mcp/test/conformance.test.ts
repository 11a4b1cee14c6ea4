import { type StartHttpServerOptions, startHttpServer } from '../src/http.js';

/** The shape of `defineAdapterConformance` of the private `@authsec/adapter-conformance` package. */
type DefineConformance = (
  name: string,
  start: (ctx: {
    host: string;
    port: number;
    options: StartHttpServerOptions & { resourceUrl: string };
  }) => Promise<{ url: string; close(): Promise<void> }>,
) => void;

// Loaded by path from its source, not by package name: @authsec/adapter-conformance depends on @authsec/mcp, and
// a dependency back would make the workspace graph cyclic (turbo refuses cycles). A variable specifier keeps tsc
// from pulling the file into this package's program.
const suite = new URL('../../adapter-conformance/src/index.ts', import.meta.url).href;
const { defineAdapterConformance } = (await import(suite)) as { defineAdapterConformance: DefineConformance };

defineAdapterConformance('@authsec/mcp node:http handler', async ({ host, port, options }) => {
  const running = await startHttpServer({ ...options, host, port });
  return { url: running.url, close: () => running.close() };
});
