/**
 * The conformance suite's primitives on the MCP SDK v2 line (`@authsec/mcp/v2`), for conformance 0.2: the same
 * tools as `conformance-tools.ts`, plus the resources, prompts and completion the 2026-07-28 requirement set
 * reads. Written as any v2 tool author writes them (`protect()`, `requirement`, the SDK's own request context).
 * Served ONLY in conformance mode (allow-all engine, loud warning), never by an app or a published package.
 */

import { createAuthSec, createLogger } from '@authsec/core';
import { mountExpressV2App } from '@authsec/example-express-server/app-v2';
import { mountFastifyV2App } from '@authsec/example-fastify-server/app-v2';
import { mountNestV2App } from '@authsec/example-nestjs-server/app-v2';
import type { RunningHttpServer } from '@authsec/mcp';
import { type ProtectedMcpServer, protect, ResourceTemplate, startMcpV2HttpServer } from '@authsec/mcp/v2';
import { type SampleHttpContext, type SampleHttpMount, serveSampleHttpApp } from '@authsec/sample-tools';
import type { SampleV2Options } from '@authsec/sample-tools/v2';
import { completable, fromJsonSchema, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { allowAllEngine, CONFORMANCE_ISSUER, openConformanceMode } from './allow-all.js';
import { conformanceKey } from './conformance-key.js';
import { PNG, SEP1034_SCHEMA, SEP1330_SCHEMA, WAV } from './fixtures.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
// Conformance mode serves one fixed caller: every primitive is open to any authenticated caller.
const ANYONE = {};

async function elicit(
  sdk: ServerContext,
  message: string,
  requestedSchema: Record<string, unknown>,
): Promise<string> {
  const result = await sdk.mcpReq.elicitInput({ mode: 'form', message, requestedSchema } as never);
  return `action=${result.action}, content=${JSON.stringify(result.content ?? {})}`;
}

function declareTools(server: ProtectedMcpServer): void {
  const plain = (name: string, description: string, result: () => ReturnType<typeof text> | object) =>
    server.registerTool(name, { description, requirement: ANYONE }, async () => result() as never);
  plain('test_simple_text', 'Returns simple text content', () =>
    text('This is a simple text response for testing.'),
  );
  plain('test_image_content', 'Returns image content', () => ({
    content: [{ type: 'image', data: PNG, mimeType: 'image/png' }],
  }));
  plain('test_audio_content', 'Returns audio content', () => ({
    content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }],
  }));
  plain('test_embedded_resource', 'Returns an embedded resource', () => ({
    content: [
      {
        type: 'resource',
        resource: {
          uri: 'test://embedded-resource',
          mimeType: 'text/plain',
          text: 'This is an embedded resource content.',
        },
      },
    ],
  }));
  plain('test_multiple_content_types', 'Returns text, image and resource content', () => ({
    content: [
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
  }));
  plain('test_error_handling', 'Always returns an error result', () => ({
    isError: true,
    content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }],
  }));
  server.registerTool(
    'test_tool_with_logging',
    { description: 'Sends log messages while running', requirement: ANYONE },
    async (_args, { sdk }) => {
      for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
        await sdk.mcpReq.log('info', data);
        await sleep(50);
      }
      return text('Tool with logging executed successfully');
    },
  );
  server.registerTool(
    'test_tool_with_progress',
    { description: 'Reports progress while running', requirement: ANYONE },
    async (_args, { sdk }) => {
      const progressToken = sdk.mcpReq._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progressToken !== undefined) {
          await sdk.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken, progress, total: 100, message: `Completed step ${progress}` },
          });
        }
        await sleep(50);
      }
      return text(String(progressToken ?? 'no progress token'));
    },
  );
  server.registerTool(
    'test_sampling',
    {
      description: 'Asks the client to sample',
      inputSchema: z.object({ prompt: z.string() }),
      requirement: ANYONE,
    },
    async ({ prompt }, { sdk }) => {
      const result = await sdk.mcpReq.requestSampling({
        messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
        maxTokens: 100,
      });
      const content = Array.isArray(result.content) ? result.content[0] : result.content;
      return text(`LLM response: ${content?.type === 'text' ? content.text : 'No text response'}`);
    },
  );
  server.registerTool(
    'test_elicitation',
    {
      description: 'Asks the client for input',
      inputSchema: z.object({ message: z.string() }),
      requirement: ANYONE,
    },
    async ({ message }, { sdk }) =>
      text(
        `User response: ${await elicit(sdk, message, {
          type: 'object',
          properties: {
            username: { type: 'string', description: "User's response" },
            email: { type: 'string', description: "User's email address" },
          },
          required: ['username', 'email'],
        })}`,
      ),
  );
  const eliciting = (name: string, description: string, schema: Record<string, unknown>) =>
    server.registerTool(name, { description, requirement: ANYONE }, async (_args, { sdk }) =>
      text(`Elicitation completed: ${await elicit(sdk, description, schema)}`),
    );
  eliciting(
    'test_elicitation_sep1034_defaults',
    'Elicitation with a default for every primitive type',
    SEP1034_SCHEMA,
  );
  eliciting(
    'test_elicitation_sep1330_enums',
    'Elicitation with the five enum schema variants',
    SEP1330_SCHEMA,
  );
  // SEP-2243: a parameter mirrored into an `Mcp-Param-Region` header, which the SDK checks against the body.
  server.registerTool(
    'test_x_mcp_header',
    {
      description: 'A tool with a parameter sent as an Mcp-Param header',
      inputSchema: fromJsonSchema({
        type: 'object',
        properties: { region: { type: 'string', 'x-mcp-header': 'Region' } },
        required: ['region'],
      } as never),
      requirement: ANYONE,
    },
    async (args) => text(`Region: ${String((args as { region?: unknown }).region)}`),
  );
  server.registerTool(
    'json_schema_2020_12_tool',
    {
      description: 'Tool with JSON Schema 2020-12 features',
      inputSchema: fromJsonSchema({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        $defs: {
          address: {
            $anchor: 'addressDef',
            type: 'object',
            properties: { street: { type: 'string' }, city: { type: 'string' } },
          },
        },
        properties: {
          name: { type: 'string' },
          address: { $ref: '#/$defs/address' },
          contactMethod: { type: 'string', enum: ['phone', 'email'] },
          phone: { type: 'string' },
          email: { type: 'string' },
        },
        allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
        if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's own `then` keyword, which the suite checks is kept
        then: { required: ['phone'] },
        else: { required: ['email'] },
        additionalProperties: false,
      } as never),
      requirement: ANYONE,
    },
    async (args) => text(`Received ${JSON.stringify(args)}`),
  );
}

function declareResourcesAndPrompts(server: ProtectedMcpServer): void {
  server.registerResource(
    'static-text',
    'test://static-text',
    { mimeType: 'text/plain', requirement: ANYONE },
    async (uri) => ({
      contents: [
        { uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' },
      ],
    }),
  );
  server.registerResource(
    'static-binary',
    'test://static-binary',
    { mimeType: 'image/png', requirement: ANYONE },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: 'image/png', blob: PNG }],
    }),
  );
  server.registerResource(
    'watched-resource',
    'test://watched-resource',
    { mimeType: 'text/plain', requirement: ANYONE },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'Watched resource content' }],
    }),
  );
  server.registerResource(
    'template',
    new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { mimeType: 'application/json', requirement: ANYONE },
    async (uri, { id }) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: 'application/json',
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
        },
      ],
    }),
  );
  const user = (content: Record<string, unknown>) => ({ role: 'user' as const, content: content as never });
  server.registerPrompt(
    'test_simple_prompt',
    { description: 'A simple prompt', requirement: ANYONE },
    async () => ({
      messages: [user({ type: 'text', text: 'This is a simple prompt for testing.' })],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_arguments',
    {
      description: 'A prompt with arguments',
      argsSchema: z.object({
        arg1: completable(z.string().describe('First test argument'), (value: string) => [
          `${value}-1`,
          `${value}-2`,
        ]),
        arg2: z.string().describe('Second test argument'),
      }),
      requirement: ANYONE,
    },
    async ({ arg1, arg2 }) => ({
      messages: [user({ type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` })],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_embedded_resource',
    {
      description: 'A prompt embedding a resource',
      argsSchema: z.object({ resourceUri: z.string() }),
      requirement: ANYONE,
    },
    async ({ resourceUri }) => ({
      messages: [
        user({
          type: 'resource',
          resource: {
            uri: String(resourceUri),
            mimeType: 'text/plain',
            text: 'Embedded resource content for testing.',
          },
        }),
        user({ type: 'text', text: 'Please process the embedded resource above.' }),
      ],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_image',
    { description: 'A prompt with an image', requirement: ANYONE },
    async () => ({
      messages: [
        user({ type: 'image', data: PNG, mimeType: 'image/png' }),
        user({ type: 'text', text: 'Please analyze the image above.' }),
      ],
    }),
  );
}

const form = (message: string, properties: Record<string, unknown>, required: string[]) => ({
  method: 'elicitation/create',
  params: { message, requestedSchema: { type: 'object', properties, required } },
});
const sample = (text: string, maxTokens: number) => ({
  method: 'sampling/createMessage',
  params: { messages: [{ role: 'user', content: { type: 'text', text } }], maxTokens },
});
const ROOTS = { method: 'roots/list', params: {} };
const answer = (responses: Readonly<Record<string, unknown>> | undefined, key: string) =>
  responses?.[key] as { content?: unknown; roots?: { uri: string }[] } | undefined;
const sampled = (value: { content?: unknown } | undefined) => {
  const content = Array.isArray(value?.content) ? value.content[0] : value?.content;
  return (content as { text?: string } | undefined)?.text ?? '';
};

/**
 * The multi-round-trip (`input_required`) primitives of SEP-2322, through `context.inputRequired()`: every
 * `requestState` is sealed by AuthSec (encrypted, bound to the caller, tool and arguments, one-time), so the
 * tampered-state scenario is refused with `-32602` before the handler runs.
 */
function declareInputRequired(server: ProtectedMcpServer): void {
  const tool = (name: string, handler: Parameters<ProtectedMcpServer['registerTool']>[2]) =>
    server.registerTool(name, { description: `SEP-2322: ${name}`, requirement: ANYONE }, handler);
  tool('test_input_required_result_elicitation', async (_args, context) => {
    const reply = answer(context.inputResponses, 'user_name');
    if (reply === undefined)
      return context.inputRequired({
        inputRequests: {
          user_name: form('What is your name?', { name: { type: 'string' } }, ['name']),
        } as never,
      });
    return text(`Hello, ${(reply.content as { name?: string } | undefined)?.name ?? 'stranger'}!`);
  });
  tool('test_input_required_result_sampling', async (_args, context) => {
    const reply = answer(context.inputResponses, 'capital_question');
    if (reply === undefined)
      return context.inputRequired({
        inputRequests: { capital_question: sample('What is the capital of France?', 100) } as never,
      });
    return text(`Sampling response: ${sampled(reply)}`);
  });
  tool('test_input_required_result_list_roots', async (_args, context) => {
    const reply = answer(context.inputResponses, 'client_roots');
    if (reply === undefined)
      return context.inputRequired({ inputRequests: { client_roots: ROOTS } as never });
    return text(`Roots: ${(reply.roots ?? []).map((root) => root.uri).join(', ')}`);
  });
  tool('test_input_required_result_request_state', async (_args, context) => {
    if (context.state === undefined)
      return context.inputRequired({
        inputRequests: { confirm: form('Please confirm', { ok: { type: 'boolean' } }, ['ok']) } as never,
        state: { round: 1 },
      });
    return text(`state-ok: round ${(context.state as { round: number }).round} confirmed`);
  });
  tool('test_input_required_result_tampered_state', async (_args, context) => {
    if (context.state === undefined)
      return context.inputRequired({
        inputRequests: { confirm: form('Please confirm', { ok: { type: 'boolean' } }, ['ok']) } as never,
        state: { round: 1 },
      });
    return text('state-ok');
  });
  tool('test_input_required_result_multiple_inputs', async (_args, context) => {
    const keys = ['user_name', 'greeting', 'client_roots'];
    if (context.state === undefined || keys.some((key) => answer(context.inputResponses, key) === undefined))
      return context.inputRequired({
        inputRequests: {
          user_name: form('What is your name?', { name: { type: 'string' } }, ['name']),
          greeting: sample('Generate a greeting', 50),
          client_roots: ROOTS,
        } as never,
        state: { round: 1 },
      });
    return text('All inputs received: user_name, greeting, client_roots');
  });
  tool('test_input_required_result_multi_round', async (_args, context) => {
    const round = (context.state as { round?: number; name?: string } | undefined)?.round;
    if (round === undefined)
      return context.inputRequired({
        inputRequests: {
          step1: form('Step 1: What is your name?', { name: { type: 'string' } }, ['name']),
        } as never,
        state: { round: 1 },
      });
    if (round === 1) {
      const name = (answer(context.inputResponses, 'step1')?.content as { name?: string } | undefined)?.name;
      return context.inputRequired({
        inputRequests: {
          step2: form('Step 2: What is your favorite color?', { color: { type: 'string' } }, ['color']),
        } as never,
        state: { round: 2, name },
      });
    }
    const color = (answer(context.inputResponses, 'step2')?.content as { color?: string } | undefined)?.color;
    return text(`Done: ${(context.state as { name?: string }).name} likes ${color}`);
  });
  tool('test_input_required_result_capabilities', async (_args, context) => {
    // Only what the client declared it can answer (its capabilities arrive in the request's envelope).
    // The SDK hands the 2026-07-28 envelope over as parsed (its type is opaque in SDK 2.4).
    const envelope = context.sdk.mcpReq.envelope as Record<string, unknown> | undefined;
    const capabilities = (envelope?.['io.modelcontextprotocol/clientCapabilities'] ?? {}) as Record<
      string,
      unknown
    >;
    if (context.inputResponses !== undefined) return text('Capabilities respected');
    const requests: Record<string, unknown> = {};
    if (capabilities.elicitation)
      requests.user_name = form('What is your name?', { name: { type: 'string' } }, ['name']);
    if (capabilities.sampling) requests.question = sample('Say hello', 20);
    if (capabilities.roots) requests.client_roots = ROOTS;
    if (Object.keys(requests).length === 0) return text('The client declared no capability to ask through');
    return context.inputRequired({ inputRequests: requests as never });
  });
  server.registerPrompt(
    'test_input_required_result_prompt',
    { description: 'SEP-2322 on prompts/get', requirement: ANYONE },
    async (_args, context) => {
      const reply = answer(context.inputResponses, 'user_context');
      if (reply === undefined)
        return context.inputRequired({
          inputRequests: {
            user_context: form('What context should the prompt use?', { context: { type: 'string' } }, [
              'context',
            ]),
          } as never,
        });
      const chosen = (reply.content as { context?: string } | undefined)?.context ?? '';
      return {
        messages: [{ role: 'user', content: { type: 'text', text: `Prompt with context: ${chosen}` } }],
      };
    },
  );
}

/**
 * The diagnostic tools of the `server-stateless` scenario (SEP-2575): an input request the client cannot serve
 * (no `sampling` capability declared: the SDK answers `-32021`), a streamed elicitation, a tool that logs (the
 * SDK sends nothing without `_meta` logLevel), and two triggers that change the lists, announced through
 * `server.changed()` as a grant would be.
 */
function declareStatelessDiagnostics(server: ProtectedMcpServer): void {
  const tool = (name: string, handler: Parameters<ProtectedMcpServer['registerTool']>[2]) =>
    server.registerTool(name, { description: `SEP-2575: ${name}`, requirement: ANYONE }, handler);
  tool('test_missing_capability', async (_args, context) =>
    context.inputRequired({ inputRequests: { sample: sample('Say hi', 20) } as never }),
  );
  tool('test_streaming_elicitation', async (_args, context) => {
    const reply = answer(context.inputResponses, 'confirm');
    if (reply === undefined)
      return context.inputRequired({
        inputRequests: { confirm: form('Continue?', { ok: { type: 'boolean' } }, ['ok']) } as never,
      });
    return text('Confirmed');
  });
  tool('test_logging_tool', async (_args, { sdk }) => {
    await sdk.mcpReq.log('info', 'test_logging_tool ran');
    return text('Logged (only when the request set a log level)');
  });
  tool('test_trigger_tool_change', async () => {
    server.changed();
    return text('Tools changed');
  });
  tool('test_trigger_prompt_change', async () => {
    server.changed();
    return text('Prompts changed');
  });
}

/** Every primitive of the suite, declared on a v2 server (what each v2 target serves). */
export function declareConformanceV2(server: ProtectedMcpServer): void {
  declareTools(server);
  declareResourcesAndPrompts(server);
  declareInputRequired(server);
  declareStatelessDiagnostics(server);
}

/** What a sample app's v2 mount is given in conformance mode: the suite's capabilities and primitives. */
export const CONFORMANCE_V2_OPTIONS: SampleV2Options = {
  serverOptions: { capabilities: { logging: {}, completions: {} } },
  declare: declareConformanceV2,
};

type V2Mount = (context: SampleHttpContext, options: SampleV2Options) => Promise<SampleHttpMount>;

/** Each sample app's v2 mount (the function its `main.ts` runs), by target name. */
const V2_MOUNTS: Readonly<Record<string, V2Mount>> = {
  'express-server': mountExpressV2App,
  'fastify-server': mountFastifyV2App,
  'nestjs-server (Express)': (context, options) => mountNestV2App(context, 'express', options),
  'nestjs-server (Fastify)': (context, options) => mountNestV2App(context, 'fastify', options),
};

/** Every v2 target, in the order of the results table. */
export const V2_TARGETS = ['node:http', ...Object.keys(V2_MOUNTS)] as const;

/** Starts the v2 node:http handler (both eras at `/mcp`) in conformance mode on 127.0.0.1. */
async function startNodeHttpV2(): Promise<{ url: string; close(): Promise<void> }> {
  const engine = createAuthSec({
    issuers: [{ issuer: CONFORMANCE_ISSUER, keys: [conformanceKey()] }],
    // The audience is never checked in this mode (no token is verified); the resource URL comes once bound.
    audience: 'urn:authsec:conformance',
    logger: createLogger({ level: 'warn' }),
  });
  const authsec = allowAllEngine(engine);
  const server = protect(
    authsec,
    { name: 'authsec-conformance-v2', version: '1.0.0' },
    { serverOptions: CONFORMANCE_V2_OPTIONS.serverOptions! },
  );
  declareConformanceV2(server);
  const http: RunningHttpServer = await startMcpV2HttpServer({
    server,
    authsec,
    authorizationServers: [CONFORMANCE_ISSUER],
  });
  return {
    url: http.url,
    close: async () => {
      await http.close();
      await engine.close();
    },
  };
}

/**
 * Starts a v2 target in conformance mode on 127.0.0.1: the node:http handler, or a sample app's own v2 mount
 * given the suite's primitives (and none of the sample tools).
 */
export async function startV2ConformanceTarget(
  target: string = 'node:http',
): Promise<{ url: string; close(): Promise<void> }> {
  if (target === 'node:http') return startNodeHttpV2();
  const mount = V2_MOUNTS[target];
  if (mount === undefined) throw new TypeError(`unknown v2 conformance target: ${target}`);
  const served = await serveSampleHttpApp({
    host: '127.0.0.1',
    port: 0,
    open: async (resourceUrl) => ({ ...openConformanceMode(resourceUrl), tools: [] }),
    mount: (context) => mount(context, CONFORMANCE_V2_OPTIONS),
  });
  return { url: served.resourceUrl, close: () => served.close() };
}
