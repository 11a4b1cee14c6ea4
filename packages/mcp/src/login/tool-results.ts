import { AuthSecError, type Logger, toAuthSecError } from '@authsec/core';
import { ERROR_META_KEY } from '../result.js';
import type { AuthSecTool, JsonSchemaObject, PublicToolContext, ToolContext, ToolResult } from '../types.js';

/** A result whose body is both the JSON text and `structuredContent`. */
export function jsonResult(body: Record<string, unknown>): ToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(body, null, 2) }], structuredContent: body };
}

/**
 * An `isError` result `{ status: 'error', error: <code>, message }`, with `_meta['authsec/error'] = { code }`.
 * 5xx details never reach the caller.
 */
export function loginErrorResult(error: unknown): ToolResult {
  const err = toAuthSecError(error);
  const message =
    err.code === 'SERVICE_UNAVAILABLE'
      ? 'The login service is temporarily unavailable; try again later.'
      : err.expose
        ? err.message
        : 'The server could not complete the login.';
  const reason = err.expose && typeof err.details.reason === 'string' ? err.details.reason : undefined;
  const body = { status: 'error', error: err.code, ...(reason === undefined ? {} : { reason }), message };
  return { ...jsonResult(body), isError: true, _meta: { [ERROR_META_KEY]: { code: err.code } } };
}

function optionalString(args: Record<string, unknown>, name: string, max: number): string | undefined {
  const value = args[name];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > max) {
    throw new AuthSecError(
      'BAD_REQUEST',
      `Invalid argument '${name}': expected a string of at most ${max} characters`,
      {
        details: { fields: [name] },
      },
    );
  }
  return value.trim();
}

function connectionOf(context: ToolContext | PublicToolContext): string {
  const id = (context as Partial<PublicToolContext>).connectionId;
  if (typeof id !== 'string' || id === '') {
    throw new AuthSecError('INTERNAL', 'The login tools need a connection id');
  }
  return id;
}

/** One login tool: its description, and a handler given the connection id and the parsed string arguments. */
export interface LoginToolSpec {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: JsonSchemaObject;
  readonly annotations: Record<string, unknown>;
  /** Optional string arguments and their maximum lengths; other arguments are ignored. */
  readonly fields: Readonly<Record<string, number>>;
  readonly run: (
    connectionId: string,
    args: Readonly<Record<string, string | undefined>>,
  ) => Promise<ToolResult>;
}

/**
 * Builds a public {@link AuthSecTool} from a spec. `run` never throws: every failure becomes
 * {@link loginErrorResult}, and failures that are not exposed are logged (code and cause, never a token).
 */
export function defineLoginTool(
  spec: LoginToolSpec,
  env: { readonly isClosed: () => boolean; readonly logger: Logger },
): AuthSecTool {
  const parse = (args: Record<string, unknown>): Record<string, string> => {
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      throw new AuthSecError('BAD_REQUEST', 'Arguments must be an object');
    }
    const parsed: Record<string, string> = {};
    for (const [field, max] of Object.entries(spec.fields)) {
      const value = optionalString(args, field, max);
      if (value !== undefined) parsed[field] = value;
    }
    return parsed;
  };
  return Object.freeze({
    name: spec.name,
    description: spec.description,
    requirement: undefined,
    public: true,
    inputSchema: spec.inputSchema,
    annotations: Object.freeze({ ...spec.annotations }),
    parse,
    async run(args: Record<string, unknown>, context: ToolContext | PublicToolContext) {
      try {
        if (env.isClosed()) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed');
        return await spec.run(connectionOf(context), parse(args));
      } catch (error) {
        const err = toAuthSecError(error);
        if (!err.expose) {
          env.logger.error(`${spec.name} failed`, {
            code: err.code,
            cause: String(err.cause ?? err.message),
          });
        }
        return loginErrorResult(err);
      }
    },
  });
}
