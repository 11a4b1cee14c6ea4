/**
 * The sample tool set on the MCP SDK v2 line, as every sample app's v2 mount declares it: one protected server
 * (`protect()` of `@authsec/mcp/v2`) with the context's tools, plus what a caller adds (the conformance runs
 * declare their own primitives on the same mount).
 */
import { type ProtectedMcpServer, type ProtectOptions, protect } from '@authsec/mcp/v2';
import { declareTools } from '@authsec/mcp/v2/tools';
import type { SampleHttpContext } from './http-app.js';

/** What a v2 mount takes besides its context. */
export interface SampleV2Options {
  /** The SDK's `McpServer` options (capabilities, instructions). Default: none. */
  readonly serverOptions?: ProtectOptions['serverOptions'];
  /** Declares more tools, resources or prompts on the server after the context's tools. */
  readonly declare?: (server: ProtectedMcpServer) => void;
}

/** The protected v2 server of a sample app: `context.tools` with their requirements, then `options.declare`. */
export function protectSampleServer(
  context: Pick<SampleHttpContext, 'authsec' | 'tools' | 'services'>,
  name: string,
  options: SampleV2Options = {},
): ProtectedMcpServer {
  const { authsec, tools, services } = context;
  const server = protect(
    authsec,
    { name, version: '0.1.0' },
    {
      ...(services === undefined ? {} : { services }),
      ...(options.serverOptions === undefined ? {} : { serverOptions: options.serverOptions }),
    },
  );
  declareTools(server, tools);
  options.declare?.(server);
  return server;
}
