import type { Requirement } from '@authsec/core';
import type { ToolInputSchema } from '@authsec/mcp';
import { SetMetadata } from '@nestjs/common';
import { AUTHSEC_TOOL_METADATA } from './authsec.constants.js';

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
