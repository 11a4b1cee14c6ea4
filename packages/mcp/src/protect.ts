import { AuthSecError, compileRequirement, type Requirement, silentLogger } from '@authsec/core';
import type { ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { type ArgsOf, compileInputSchema, type ToolInputSchema } from './input-schema.js';
import { normalizeToolResult } from './result.js';
import type {
  AuthSecTool,
  PublicToolContext,
  PublicToolHandler,
  ToolContext,
  ToolHandler,
  ToolResult,
} from './types.js';

/** Options of {@link protect} and {@link publicTool}. */
export interface ToolOptions<S extends ToolInputSchema | undefined = ToolInputSchema | undefined> {
  /** What the tool does, shown to the model. Default: none. */
  readonly description?: string;
  /**
   * The arguments' schema: a zod object schema (validated with `safeParse`, advertised with
   * `z.toJSONSchema`; the handler receives the parsed output) or a JSON Schema object (validated with the MCP
   * SDK's bundled ajv). Default: any object. Invalid arguments never reach the handler: the caller gets an
   * `isError` result naming the field. `_user_info` is reserved and may not appear in it.
   */
  readonly inputSchema?: S;
  /** MCP tool annotations (`title`, `readOnlyHint`, `destructiveHint`...), passed through as given. */
  readonly annotations?: ToolAnnotations;
}

/** Options of {@link protect}. */
export type ProtectOptions<S extends ToolInputSchema | undefined = ToolInputSchema | undefined> =
  ToolOptions<S>;

/** Options of {@link publicTool}. */
export type PublicToolOptions<S extends ToolInputSchema | undefined = ToolInputSchema | undefined> =
  ToolOptions<S>;

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

function checkCommon(name: unknown, handler: unknown): asserts name is string {
  if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
    throw new TypeError(
      `Invalid tool name ${JSON.stringify(name)}: use 1 to 128 characters of A-Z, a-z, 0-9, '_', '-' and '.'`,
    );
  }
  if (typeof handler !== 'function') throw new TypeError(`Tool '${name}': the handler must be a function`);
}

function annotationsOf(options: ToolOptions | undefined): Record<string, unknown> | undefined {
  return options?.annotations ? Object.freeze({ ...options.annotations }) : undefined;
}

/**
 * Declares a protected tool: hidden from callers who do not satisfy `requirement`, refused to them when called
 * anyway, and run with the caller's identity. `requirement` uses the five categories (`roles`, `groups`,
 * `scopes`, `resources`, `permissions`) and `requireAll`; `{}` or omitted means any authenticated caller.
 *
 * The handler receives `(args, context)`: `args` are the validated arguments plus `args._user_info` (email,
 * sub, tenant_id, roles, groups, scopes, resources, frozen; a `_user_info` sent by the client is discarded),
 * and `context` is `{ user, principal, tenant, sessionId, services, signal }`. It may return a string, a list
 * of content items or a full result. A thrown `AuthSecError` with a 4xx code reaches the caller as an `isError`
 * result with its message; any other error becomes `'Tool failed'` (the cause is logged, never sent).
 *
 * Misuse (bad name, bad requirement, bad schema, no handler) is a `TypeError`, thrown here.
 *
 * @example
 * ```ts
 * const adminPanel = protect('admin_panel', { roles: ['admin'] }, async (args) =>
 *   `Welcome to the admin panel, ${args._user_info.email}!`);
 * ```
 */
export function protect<S extends ToolInputSchema | undefined = undefined>(
  name: string,
  requirement: Requirement | undefined,
  handler: ToolHandler<ArgsOf<S>>,
  options?: ProtectOptions<S>,
): AuthSecTool;
/** Declares a tool any authenticated caller may use (the brief's `@protected_by_AuthSec("hello")`). */
export function protect<S extends ToolInputSchema | undefined = undefined>(
  name: string,
  handler: ToolHandler<ArgsOf<S>>,
  options?: ProtectOptions<S>,
): AuthSecTool;
export function protect(name: string, ...rest: unknown[]): AuthSecTool {
  const [requirementArg, handlerArg, optionsArg] =
    typeof rest[0] === 'function' ? [undefined, rest[0], rest[1]] : [rest[0], rest[1], rest[2]];
  checkCommon(name, handlerArg);
  const handler = handlerArg as ToolHandler;
  const options = optionsArg as ProtectOptions | undefined;
  if (requirementArg !== undefined && (typeof requirementArg !== 'object' || requirementArg === null)) {
    throw new TypeError(`Tool '${name}': the requirement must be an object such as { roles: ['admin'] }`);
  }
  const requirement = (requirementArg ?? {}) as Requirement;
  // Validates now so a typo fails at start; the engine compiles again (and warns) when the server registers it.
  compileRequirement(requirement, { name, logger: silentLogger });
  const schema = compileInputSchema(name, options?.inputSchema);
  return Object.freeze({
    name,
    description: options?.description,
    requirement,
    public: false,
    inputSchema: schema.jsonSchema,
    annotations: annotationsOf(options),
    parse: schema.parse,
    async run(args: Record<string, unknown>, context: ToolContext | PublicToolContext): Promise<ToolResult> {
      if (context.user === undefined || context.principal === undefined) {
        throw new AuthSecError('INTERNAL', `Protected tool '${name}' was run without a caller`);
      }
      const user = context.user;
      const withUser = { ...args, _user_info: user } as Parameters<ToolHandler>[0];
      return normalizeToolResult(await handler(withUser, context as ToolContext));
    },
  });
}

/** The brief's name for {@link protect} (`@protected_by_AuthSec`). */
export const protectedByAuthSec: typeof protect = protect;

/**
 * Declares a public tool: always listed, callable before login. Its handler gets `(args, context)` where
 * `context.user` is the caller when one is logged in, else `undefined`. No `_user_info` is injected (and one
 * sent by the client is discarded).
 */
export function publicTool<S extends ToolInputSchema | undefined = undefined>(
  name: string,
  handler: PublicToolHandler<ArgsOf<S>>,
  options?: PublicToolOptions<S>,
): AuthSecTool {
  checkCommon(name, handler);
  const schema = compileInputSchema(name, options?.inputSchema);
  const run = handler as PublicToolHandler;
  return Object.freeze({
    name,
    description: options?.description,
    requirement: undefined,
    public: true,
    inputSchema: schema.jsonSchema,
    annotations: annotationsOf(options),
    parse: schema.parse,
    async run(args: Record<string, unknown>, context: ToolContext | PublicToolContext): Promise<ToolResult> {
      return normalizeToolResult(await run(args, context as PublicToolContext));
    },
  });
}
