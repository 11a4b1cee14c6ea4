import type { AuthSec, AuthSecOptions, Principal, ServiceAccess } from '@authsec/core';
import type { McpV2HttpHandlerOptions, ProtectedMcpServer, ProtectOptions } from '@authsec/mcp/v2';

/** Options of the v2 `AuthSecModule` (`forRoot`, or what `forRootAsync`'s factory or class returns). */
export interface AuthSecV2ModuleOptions
  extends Omit<McpV2HttpHandlerOptions, 'server' | 'authsec' | 'fallback'> {
  /**
   * The engine (from `createAuthSec`), or its options (the module creates it). Closed when the application
   * shuts down.
   */
  readonly authsec: AuthSec | AuthSecOptions;
  /** MCP server name reported at initialization, and default `resource_name`. Default `'authsec-nestjs'`. */
  readonly name?: string;
  /** MCP server version. Default `'1.0.0'`. */
  readonly version?: string;
  /**
   * A protected server (`protect()` of `@authsec/mcp/v2`) holding declarations of its own; the discovered
   * `@AuthSecTool`, `@AuthSecResource` and `@AuthSecPrompt` methods are declared on it too. Default: a new one
   * named {@link AuthSecV2ModuleOptions.name}. (Tools built with `protect()` of `@authsec/mcp`, the v1 line, go on
   * it with `declareTools` of `@authsec/mcp/v2/tools`.)
   */
  readonly server?: ProtectedMcpServer;
  /** The `services` of a handler's context for a caller. Default: none (reads fail, and say why). */
  readonly services?: (principal: Principal) => ServiceAccess;
  /** The SDK's `McpServer` options (capabilities, instructions) of the server the module creates. */
  readonly serverOptions?: ProtectOptions['serverOptions'];
  /**
   * Serve the MCP endpoint (at the resource URL's path), the metadata documents and health. `false` keeps only
   * the guard (REST-only applications). Default `true`.
   */
  readonly mcp?: boolean;
}

/** The module's extra options (`forRoot({ ..., isGlobal, globalGuard })`), read when it is registered. */
export interface AuthSecV2ModuleExtras {
  /** Register the module globally (its providers reach every module). Default `true`. */
  readonly isGlobal?: boolean;
  /**
   * Guard every REST route with `AuthSecGuard` (a valid token on each; `@RequireAuth(requirement)` adds a
   * requirement, `@Public()` lets a route through). Default `false`: only `@RequireAuth` routes are guarded.
   */
  readonly globalGuard?: boolean;
}
