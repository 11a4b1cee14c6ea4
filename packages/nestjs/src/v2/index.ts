/**
 * @authsec/nestjs/v2: AuthSec for NestJS on the MCP SDK v2 (`@modelcontextprotocol/server` 2.x), both protocol
 * eras at one path, on the Express and Fastify platforms. Only wiring lives here: the request pipeline, the
 * resource server and the endpoint are `createMcpV2Adapter` of `@authsec/mcp/v2`; on Fastify the routes are
 * `@authsec/fastify/v2`'s. This entry never loads the v1 SDK.
 *
 * @packageDocumentation
 */
import 'reflect-metadata';

export type { Principal, Requirement, ResourceServer } from '@authsec/core';
export {
  AUTHSEC_ENGINE,
  AUTHSEC_PUBLIC_METADATA,
  AUTHSEC_REQUIREMENT_METADATA,
  AUTHSEC_RESOURCE_SERVER,
  DEFAULT_SERVER_NAME,
} from '../authsec.constants.js';
export {
  AuthSecGuard,
  type AuthSecHttpRequest,
  CurrentUser,
  Public,
  principalOf,
  RequireAuth,
} from '../authsec.route.js';
export {
  AUTHSEC_PRIMITIVE_METADATA,
  type AuthSecPrimitiveMetadata,
  AuthSecPrompt,
  AuthSecResource,
  AuthSecTool,
} from './decorators.js';
export { AuthSecModule } from './module.js';
export {
  AUTHSEC_V2_OPTIONS,
  type AuthSecModuleAsyncOptionsInput,
  type AuthSecModuleOptionsInput,
} from './module-options.js';
export type { AuthSecV2ModuleExtras, AuthSecV2ModuleOptions } from './options.js';
export { AuthSecMcpService } from './service.js';
