import { AuthSecError } from '@authsec/core';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import * as z from 'zod';
import type { JsonSchemaObject } from './types.js';

/** A zod (v4) schema for a tool's arguments; it must describe an object. */
export type ZodInputSchema = z.core.$ZodType;

/** A tool's input schema: a zod object schema, or a JSON Schema object (`type: 'object'`). */
export type ToolInputSchema = ZodInputSchema | JsonSchemaObject;

/**
 * The arguments a handler receives for a given input schema: the zod schema's output type, or a plain record
 * for a JSON Schema (or no schema).
 */
export type ArgsOf<S> = S extends z.core.$ZodType ? z.output<S> : Record<string, unknown>;

/** An input schema prepared once, at tool creation. */
export interface CompiledInputSchema {
  /** What `tools/list` advertises. */
  readonly jsonSchema: JsonSchemaObject;
  /** Validates (and, for zod, transforms) arguments; `BAD_REQUEST` naming the field otherwise. */
  parse(args: Record<string, unknown>): Record<string, unknown>;
}

import { USER_INFO_KEY } from './user-info.js';

export { USER_INFO_KEY };

const ANY_OBJECT: JsonSchemaObject = Object.freeze({ type: 'object', additionalProperties: true });

let ajv: AjvJsonSchemaValidator | undefined;

function isZodSchema(value: unknown): value is ZodInputSchema {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkObjectSchema(tool: string, schema: Record<string, unknown>, what: string): JsonSchemaObject {
  if (schema.type !== 'object') {
    throw new TypeError(
      `Tool '${tool}': inputSchema must describe an object (${what} has type ${JSON.stringify(schema.type)})`,
    );
  }
  const properties = schema.properties;
  const required = schema.required;
  if (
    (isPlainObject(properties) && USER_INFO_KEY in properties) ||
    (Array.isArray(required) && required.includes(USER_INFO_KEY))
  ) {
    throw new TypeError(
      `Tool '${tool}': '${USER_INFO_KEY}' is reserved for the caller's identity; remove it from inputSchema`,
    );
  }
  return schema as JsonSchemaObject;
}

function badRequest(tool: string, fields: readonly string[], detail: string): AuthSecError {
  return new AuthSecError('BAD_REQUEST', `Invalid arguments for tool '${tool}': ${detail}`, {
    details: { fields: Object.freeze([...fields]) },
  });
}

function compileZod(tool: string, schema: ZodInputSchema): CompiledInputSchema {
  let generated: Record<string, unknown>;
  try {
    generated = z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>;
  } catch (cause) {
    throw new TypeError(`Tool '${tool}': inputSchema cannot be expressed as JSON Schema (${String(cause)})`);
  }
  // Clients read a schema without `$schema` as JSON Schema 2020-12 (the MCP default), which is what zod emits;
  // dropping it spares older clients that only know draft-07 meta-schemas.
  const { $schema: _dialect, ...jsonSchema } = generated;
  const advertised = Object.freeze(checkObjectSchema(tool, jsonSchema, 'the zod schema'));
  return {
    jsonSchema: advertised,
    parse(args) {
      const result = z.safeParse(schema, args);
      if (result.success) return result.data as Record<string, unknown>;
      const issues = result.error.issues.slice(0, 5);
      const fields = issues.map((issue) => issue.path.map(String).join('.') || '(arguments)');
      const detail = issues.map((issue, i) => `${fields[i]}: ${issue.message}`).join('; ');
      throw badRequest(tool, fields, detail);
    },
  };
}

// ajv names the instance `data`: "data/name must be string", "data must have required property 'name'".
function fieldsOf(message: string): { fields: string[]; detail: string } {
  const parts = message.split(', ');
  const fields: string[] = [];
  const out: string[] = [];
  for (const part of parts) {
    const required = /^data(\/\S+)? must have required property '([^']+)'$/.exec(part);
    if (required) {
      const field = [...(required[1] ?? '').split('/').filter(Boolean), required[2]!].join('.');
      fields.push(field);
      out.push(`${field}: required`);
      continue;
    }
    const nested = /^data\/(\S+) (.*)$/.exec(part);
    if (nested) {
      const field = nested[1]!.split('/').join('.');
      fields.push(field);
      out.push(`${field}: ${nested[2]}`);
      continue;
    }
    fields.push('(arguments)');
    out.push(part.replace(/^data /, 'arguments '));
  }
  return { fields, detail: out.join('; ') };
}

function compileJsonSchema(tool: string, schema: JsonSchemaObject): CompiledInputSchema {
  const advertised = Object.freeze(checkObjectSchema(tool, { ...schema }, 'the JSON Schema'));
  ajv ??= new AjvJsonSchemaValidator();
  let validate: ReturnType<AjvJsonSchemaValidator['getValidator']>;
  try {
    validate = ajv.getValidator(advertised as Parameters<AjvJsonSchemaValidator['getValidator']>[0]);
  } catch (cause) {
    throw new TypeError(`Tool '${tool}': inputSchema is not a valid JSON Schema (${String(cause)})`);
  }
  return {
    jsonSchema: advertised,
    parse(args) {
      const result = validate(args);
      if (result.valid) return args;
      const { fields, detail } = fieldsOf(result.errorMessage);
      throw badRequest(tool, fields, detail);
    },
  };
}

/**
 * Prepares a tool's input schema once. A `TypeError` (at start, never on a request) for a schema that is not
 * an object schema, that cannot be expressed as JSON Schema, or that declares the reserved `_user_info`.
 */
export function compileInputSchema(tool: string, schema: ToolInputSchema | undefined): CompiledInputSchema {
  if (schema === undefined) return { jsonSchema: ANY_OBJECT, parse: (args) => args };
  if (isZodSchema(schema)) return compileZod(tool, schema);
  if (isPlainObject(schema)) return compileJsonSchema(tool, schema as JsonSchemaObject);
  throw new TypeError(`Tool '${tool}': inputSchema must be a zod object schema or a JSON Schema object`);
}
