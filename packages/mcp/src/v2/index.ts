/**
 * @authsec/mcp/v2: AuthSec for the MCP TypeScript SDK v2 (`@modelcontextprotocol/server` 2.x), both protocol
 * eras. `protect(authsec, { name, version })` in place of `new McpServer(...)`, one `requirement` per tool,
 * resource and prompt; serve it with `startMcpV2HttpServer` / `createMcpV2HttpHandler` (the request pipeline of
 * `@authsec/core` in front of the SDK's handler) or with the SDK's own entries through `server.factory`.
 * Nothing here reaches the v1 SDK, in code or declarations. Over stdio: `@authsec/mcp/v2/stdio`; tools built
 * with `protect()` of `@authsec/mcp` (the v1 line) on a v2 server: `declareTools` of `@authsec/mcp/v2/tools`.
 *
 * @packageDocumentation
 */

export type {
  HealthPaths,
  HttpAdapterOptions,
  McpEndpoint,
  McpHttpHandler,
  RunningHttpServer,
} from '../endpoint.js';
export { bodyParserFailure, type McpEndpointRequest, requestPath, sendErrorResponse } from '../endpoint.js';
export { type ChangeScope, concerns, EVERYONE, type ScopedEventBus } from './events.js';
export {
  createMcpV2Adapter,
  createMcpV2Endpoint,
  createMcpV2HttpHandler,
  type McpV2EndpointOptions,
  type McpV2HttpHandlerOptions,
  type StartMcpV2HttpServerOptions,
  startMcpV2HttpServer,
} from './http.js';
export {
  type Access,
  type ArgsOf,
  type AuthSecContext,
  type AuthSecPromptConfig,
  type AuthSecPromptHandler,
  type AuthSecReadHandler,
  type AuthSecResourceConfig,
  type AuthSecSchema,
  type AuthSecToolConfig,
  type AuthSecToolHandler,
  type Change,
  type InstanceOptions,
  type ProtectedMcpServer,
  type ProtectOptions,
  protect,
  ResourceTemplate,
} from './server.js';
export { type AuthSecTokenVerifierOptions, authSecTokenVerifier } from './verifier.js';
