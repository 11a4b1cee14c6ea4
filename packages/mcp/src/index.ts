/**
 * @authsec/mcp: AuthSec for the raw MCP TypeScript SDK (v1). Wrap each tool with `protect()`, serve them with
 * `runMcpServerWithOAuth()` (or `createAuthSecServer()` plus a transport): tools are hidden until the caller
 * may use them, every call is authorized again, and handlers get the caller's identity.
 *
 * @packageDocumentation
 */

export { type Defaults, type DefaultsOptions, defaultStdioAudience, openDefaults } from './defaults.js';
export {
  createMcpAdapter,
  createMcpEndpoint,
  createMcpHttpHandler,
  createMcpRoutes,
  DEFAULT_HEALTH_PATHS,
  type HealthPaths,
  type HttpAdapterOptions,
  isLoopbackHost,
  type McpAdapter,
  type McpAdapterOptions,
  type McpEndpoint,
  type McpEndpointOptions,
  type McpEndpointRequest,
  type McpHttpHandler,
  type McpHttpHandlerOptions,
  type McpRoutes,
  type McpRoutesOptions,
  type RunningHttpServer,
  requestPath,
  type StartHttpServerOptions,
  sendErrorResponse,
  sendResourceMetadata,
  startHttpServer,
} from './http.js';
export { type ArgsOf, type ToolInputSchema, USER_INFO_KEY, type ZodInputSchema } from './input-schema.js';
export {
  createEnvironmentLogin,
  createToolLogin,
  type EnvironmentCredential,
  type EnvironmentLoginOptions,
  type LoginCallbackRoute,
  type ToolLogin,
  type ToolLoginCallbackOptions,
  type ToolLoginOptions,
  type ToolLoginRememberOptions,
} from './login/index.js';
export {
  type ProtectOptions,
  type PublicToolOptions,
  protect,
  protectedByAuthSec,
  publicTool,
  type ToolOptions,
} from './protect.js';
export { ERROR_META_KEY, errorResult, normalizeToolResult } from './result.js';
export { type RunMcpServerOptions, type RunningMcpServer, runMcpServerWithOAuth } from './run.js';
export {
  type AuthSecMcpServer,
  type AuthSecServerOptions,
  createAuthSecServer,
  PRINCIPAL_AUTH_KEY,
} from './server.js';
export type {
  AuthSecTool,
  JsonSchemaObject,
  LoginProvider,
  PublicToolContext,
  PublicToolHandler,
  ToolArguments,
  ToolContent,
  ToolContext,
  ToolHandler,
  ToolResult,
  ToolReturn,
  UserInfo,
} from './types.js';
export { toUserInfo } from './user-info.js';
