/**
 * The tools the official MCP conformance suite calls, written as an AuthSec tool author writes tools: public
 * tools whose handlers use only the documented tool context (`log`, `progressToken`, `sendNotification`,
 * `sendRequest`). Registered ONLY in conformance mode (`allow-all.ts`), never by an app or a published package.
 */
import { type AuthSecTool, type JsonSchemaObject, type PublicToolContext, publicTool } from '@authsec/mcp';
import {
  CreateMessageResultSchema,
  type ElicitRequestFormParams,
  ElicitResultSchema,
} from '@modelcontextprotocol/sdk/types.js';

import { PNG, SEP1034_SCHEMA, SEP1330_SCHEMA, WAV } from './fixtures.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type RequestedSchema = ElicitRequestFormParams['requestedSchema'];

/** Asks the client to fill `requestedSchema`; the answer as the suite's scenarios print it. */
async function elicit(context: PublicToolContext, message: string, requestedSchema: RequestedSchema) {
  const result = await context.sendRequest(
    { method: 'elicitation/create', params: { message, requestedSchema } },
    ElicitResultSchema,
  );
  return `action=${result.action}, content=${JSON.stringify(result.content ?? {})}`;
}

/** A no-argument tool that asks the client to fill `requestedSchema` and reports the answer (the suite's text). */
function elicitingTool(name: string, description: string, requestedSchema: RequestedSchema): AuthSecTool {
  return publicTool(
    name,
    async (_args, context) => `Elicitation completed: ${await elicit(context, description, requestedSchema)}`,
    { description },
  );
}

/** SEP-1613: the suite checks that `$schema`, `$defs` and `additionalProperties` reach `tools/list` intact. */
const JSON_SCHEMA_2020_12: JsonSchemaObject = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
    },
  },
  properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
  additionalProperties: false,
};

/** The tools the conformance suite expects, by the names and behaviour its scenarios describe. */
export function conformanceTools(): AuthSecTool[] {
  return [
    publicTool('test_simple_text', () => 'This is a simple text response for testing.', {
      description: 'Returns simple text content',
    }),
    publicTool('test_image_content', () => [{ type: 'image', data: PNG, mimeType: 'image/png' }], {
      description: 'Returns image content',
    }),
    publicTool('test_audio_content', () => [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }], {
      description: 'Returns audio content',
    }),
    publicTool(
      'test_embedded_resource',
      () => [
        {
          type: 'resource',
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
      { description: 'Returns an embedded resource' },
    ),
    publicTool(
      'test_multiple_content_types',
      () => [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: '{"test":"data","value":123}',
          },
        },
      ],
      { description: 'Returns text, image and resource content' },
    ),
    publicTool(
      'test_tool_with_logging',
      async (_args, context) => {
        for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
          await context.log('info', data);
          await sleep(50);
        }
        return 'Tool with logging executed successfully';
      },
      { description: 'Sends log messages while running' },
    ),
    publicTool(
      'test_tool_with_progress',
      async (_args, context) => {
        const { progressToken } = context;
        for (const progress of [0, 50, 100]) {
          if (progressToken !== undefined) {
            await context.sendNotification({
              method: 'notifications/progress',
              params: { progressToken, progress, total: 100, message: `Completed step ${progress}` },
            });
          }
          await sleep(50);
        }
        return String(progressToken ?? 'no progress token');
      },
      { description: 'Reports progress while running' },
    ),
    publicTool(
      'test_error_handling',
      () => ({
        isError: true,
        content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }],
      }),
      { description: 'Always returns an error result' },
    ),
    publicTool(
      'test_sampling',
      async (args, context) => {
        const result = await context.sendRequest(
          {
            method: 'sampling/createMessage',
            params: {
              messages: [{ role: 'user', content: { type: 'text', text: String(args.prompt) } }],
              maxTokens: 100,
            },
          },
          CreateMessageResultSchema,
        );
        return `LLM response: ${result.content.type === 'text' ? result.content.text : 'No text response'}`;
      },
      {
        description: 'Asks the client to sample',
        inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
      },
    ),
    publicTool(
      'test_elicitation',
      async (args, context) =>
        `User response: ${await elicit(context, String(args.message), {
          type: 'object',
          properties: {
            username: { type: 'string', description: "User's response" },
            email: { type: 'string', description: "User's email address" },
          },
          required: ['username', 'email'],
        })}`,
      {
        description: 'Asks the client for input',
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
    ),
    elicitingTool(
      'test_elicitation_sep1034_defaults',
      'Elicitation with a default for every primitive type',
      SEP1034_SCHEMA as RequestedSchema,
    ),
    elicitingTool(
      'test_elicitation_sep1330_enums',
      'Elicitation with the five enum schema variants',
      SEP1330_SCHEMA as RequestedSchema,
    ),
    publicTool('json_schema_2020_12_tool', (args) => `Received ${JSON.stringify(args)}`, {
      description: 'Tool with JSON Schema 2020-12 features',
      inputSchema: JSON_SCHEMA_2020_12,
    }),
  ];
}
