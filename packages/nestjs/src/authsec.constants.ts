/** Injection token of the resolved {@link AuthSecModuleOptions}. */
export const AUTHSEC_MODULE_OPTIONS = Symbol.for('@authsec/nestjs:options');
/** Injection token of the engine (`AuthSec` of `@authsec/core`). */
export const AUTHSEC_ENGINE = Symbol.for('@authsec/nestjs:engine');
/** Injection token of the resource server (`ResourceServer` of `@authsec/core`). */
export const AUTHSEC_RESOURCE_SERVER = Symbol.for('@authsec/nestjs:resource-server');
/** Metadata key of {@link AuthSecTool} on a method. */
export const AUTHSEC_TOOL_METADATA = '@authsec/nestjs:tool';
/** Metadata key of {@link RequireAuth} on a handler or controller. */
export const AUTHSEC_REQUIREMENT_METADATA = '@authsec/nestjs:requirement';
/** Metadata key of {@link Public} on a handler or controller. */
export const AUTHSEC_PUBLIC_METADATA = '@authsec/nestjs:public';
/** The default MCP server name (and resource name). */
export const DEFAULT_SERVER_NAME = 'authsec-nestjs';
