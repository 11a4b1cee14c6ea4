import type { AuthSecError } from '@authsec/core';
import type { ToolContent, ToolResult, ToolReturn } from './types.js';

function isContentList(value: unknown): value is readonly ToolContent[] {
  return (
    Array.isArray(value) &&
    value.every((item) => typeof item === 'object' && item !== null && typeof item.type === 'string')
  );
}

/**
 * Turns what a handler returned into a `tools/call` result: a string becomes one text item, a list of content
 * items (the brief's `[{ type: 'text', text }]`) becomes `{ content }`, a full result passes as it is. Anything
 * else is a `TypeError` (the server reports it as a tool failure).
 */
export function normalizeToolResult(value: ToolReturn): ToolResult {
  if (typeof value === 'string') return { content: [{ type: 'text', text: value }] };
  if (isContentList(value)) return { content: value };
  if (typeof value === 'object' && value !== null && isContentList((value as ToolResult).content)) {
    return value as ToolResult;
  }
  throw new TypeError('A tool handler must return a string, a list of content items or a { content } result');
}

/** The metadata key under which refusals carry their machine-readable form. */
export const ERROR_META_KEY = 'authsec/error';

/** An `isError` result with one text item, and optional `_meta`. */
export function errorResult(text: string, meta?: Record<string, unknown>): ToolResult {
  return { content: [{ type: 'text', text }], isError: true, ...(meta ? { _meta: meta } : {}) };
}

/** An `isError` result for an exposed AuthSec refusal: its message, and `_meta['authsec/error']`. */
export function refusalResult(error: AuthSecError, prefix?: string): ToolResult {
  const scopes = error.details.scopes;
  const failed = error.details.failed;
  const fields = error.details.fields;
  return errorResult(prefix ? `${prefix}: ${error.message}` : error.message, {
    [ERROR_META_KEY]: {
      code: error.code,
      ...(Array.isArray(scopes) ? { scopes: [...scopes] } : {}),
      ...(Array.isArray(failed) ? { failed: [...failed] } : {}),
      ...(Array.isArray(fields) ? { fields: [...fields] } : {}),
    },
  });
}
