/**
 * @authsec/nestjs: the MCP authorization spec on NestJS (Express and Fastify platforms). Only wiring lives here:
 * the resource server is `createResourceServer` of `@authsec/core`, the MCP endpoint `createMcpEndpoint` of
 * `@authsec/mcp`.
 *
 * @packageDocumentation
 */
import 'reflect-metadata';

export type { Principal, Requirement, ResourceServer } from '@authsec/core';
export {
  AUTHSEC_ENGINE,
  AUTHSEC_MODULE_OPTIONS,
  AUTHSEC_PUBLIC_METADATA,
  AUTHSEC_REQUIREMENT_METADATA,
  AUTHSEC_RESOURCE_SERVER,
  AUTHSEC_TOOL_METADATA,
  DEFAULT_SERVER_NAME,
} from './authsec.constants.js';
export {
  AuthSecTool,
  type AuthSecToolMetadata,
  type AuthSecToolOptions,
} from './authsec.decorators.js';
export { AuthSecModule } from './authsec.module.js';
export type { AuthSecModuleAsyncOptions, AuthSecModuleOptions } from './authsec.options.js';
export {
  AuthSecGuard,
  type AuthSecHttpRequest,
  CurrentUser,
  Public,
  principalOf,
  RequireAuth,
} from './authsec.route.js';
export { AuthSecMcpService } from './authsec-mcp.service.js';
