import type { Principal, Requirement } from '@authsec/core';
import type { ToolInputSchema } from '@authsec/mcp';
import {
  applyDecorators,
  createParamDecorator,
  type ExecutionContext,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import { AUTHSEC_REQUIREMENT_METADATA, AUTHSEC_TOOL_METADATA } from './authsec.constants.js';
import { AuthSecGuard } from './authsec.guard.js';

/** Options of {@link AuthSecTool}. */
export interface AuthSecToolOptions {
  /** What the tool does, shown to the model. Default: none. */
  readonly description?: string;
  /** The arguments' schema (zod or JSON Schema object), validated before the method runs. Default: any object. */
  readonly inputSchema?: ToolInputSchema;
  /** MCP tool annotations, passed through. Default: none. */
  readonly annotations?: Record<string, unknown>;
}

/** What {@link AuthSecTool} stores on a method. */
export interface AuthSecToolMetadata {
  readonly name: string;
  readonly requirement: Requirement;
  readonly options: AuthSecToolOptions;
}

/**
 * Serves a provider method as a protected MCP tool: hidden from callers who do not satisfy `requirement`,
 * refused when called anyway. The method is called on its provider instance with `(args, context)` exactly as a
 * `protect()` handler of `@authsec/mcp` (`args._user_info` is the caller; `context.principal` the principal).
 * `requirement` `{}` (the default) means any authenticated caller. Discovered when the application starts.
 */
export function AuthSecTool(
  name: string,
  requirement: Requirement = {},
  options: AuthSecToolOptions = {},
): MethodDecorator {
  return SetMetadata(AUTHSEC_TOOL_METADATA, { name, requirement, options } satisfies AuthSecToolMetadata);
}

/**
 * Guards a REST controller or route with {@link AuthSecGuard}: a valid bearer token is required and, when given,
 * `requirement` (roles, groups, scopes, resources, permissions) must hold. A method's requirement replaces its
 * controller's.
 */
export function RequireAuth(requirement: Requirement = {}): MethodDecorator & ClassDecorator {
  return applyDecorators(SetMetadata(AUTHSEC_REQUIREMENT_METADATA, requirement), UseGuards(AuthSecGuard));
}

/** Reads the principal {@link AuthSecGuard} verified (on Express and Fastify requests alike). */
export function principalOf(request: unknown): Principal | undefined {
  return (request as { auth?: { extra?: { principal?: Principal } } } | undefined)?.auth?.extra?.principal;
}

/** The verified caller (`Principal` of `@authsec/core`) of a route guarded by {@link AuthSecGuard}. */
export const CurrentUser = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal | undefined =>
    principalOf(context.switchToHttp().getRequest()),
);
