import type { AuthSec, AuthSecOptions, Principal, PrincipalDirectory, ServiceAccess } from '@authsec/core';
import type { McpAdapterOptions, AuthSecTool as McpTool } from '@authsec/mcp';
import type { FactoryProvider, ModuleMetadata } from '@nestjs/common';

/** Options of {@link AuthSecModule.forRoot}. */
export interface AuthSecModuleOptions extends Omit<McpAdapterOptions, 'server' | 'authsec'> {
  /**
   * The engine (from `createAuthSec`), or its options (the module creates it). Closed with the MCP server when
   * the application shuts down.
   */
  readonly authsec: AuthSec | AuthSecOptions;
  /** MCP server name reported at initialization, and default `resource_name`. Default `'authsec-nestjs'`. */
  readonly name?: string;
  /** MCP server version. Default `'1.0.0'`. */
  readonly version?: string;
  /** Tools built with `protect()` / `publicTool()`, served before the `@AuthSecTool` methods. Default none. */
  readonly tools?: readonly McpTool[];
  /** The `services` of a tool's context for a caller. Default: none (reads fail, and say why). */
  readonly services?: (principal: Principal) => ServiceAccess;
  /**
   * Grant changes to follow: callers whose grants change get `notifications/tools/list_changed`. Default: the
   * engine options' `directory`, else none.
   */
  readonly directory?: PrincipalDirectory;
  /** Instructions for the model, sent at initialization. Default none. */
  readonly instructions?: string;
  /**
   * Serve the MCP endpoint (at the resource URL's path) and the metadata documents. `false` keeps only the
   * guard (REST-only applications). Default `true`.
   */
  readonly mcp?: boolean;
}

/** Options of {@link AuthSecModule.forRootAsync}. */
export interface AuthSecModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Returns the options; may be async. */
  readonly useFactory: (...args: never[]) => AuthSecModuleOptions | Promise<AuthSecModuleOptions>;
  /** Providers whose instances are passed to `useFactory`. Default none. */
  readonly inject?: FactoryProvider['inject'];
}
