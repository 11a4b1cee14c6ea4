/**
 * What a handler can do on its own call: progress, notifications, requests to the client (sampling, elicitation)
 * and logs that respect `logging/setLevel`. Each case runs the official SDK client against the server.
 */
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  CreateMessageResultSchema,
  ElicitRequestSchema,
  ElicitResultSchema,
  type LoggingLevel,
  LoggingMessageNotificationSchema,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { protect, publicTool } from '../src/protect.js';
import type { AuthSecTool, PublicToolContext, ToolContext } from '../src/types.js';
import { JOHN } from './fixtures/sample-tools.js';
import { connectClient, createTestApp, eventually, type TestApp, type TestClient } from './helpers/app.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function app(tools: AuthSecTool[]): Promise<TestApp> {
  const created = await createTestApp({ tools });
  cleanups.push(() => created.mcp.close());
  return created;
}

function textOf(result: unknown): string {
  return (result as { content: { text?: string }[] }).content.map((c) => c.text ?? '').join('\n');
}

/** Every `notifications/message` a client receives, as `level:data`. */
function collectLogs(tc: TestClient): string[] {
  const logs: string[] = [];
  tc.client.setNotificationHandler(LoggingMessageNotificationSchema, async ({ params }) => {
    logs.push(`${params.level}:${String(params.data)}${params.logger ? `@${params.logger}` : ''}`);
  });
  return logs;
}

const LEVELS: LoggingLevel[] = ['debug', 'info', 'warning', 'error'];

const logEveryLevel = publicTool('log_levels', async (_args, context) => {
  for (const level of LEVELS) await context.log(level, `at ${level}`);
  await context.log('notice', 'named', 'billing');
  return 'logged';
});

describe('context.progressToken and context.sendNotification', () => {
  it("report progress with the client's token, on a protected tool", async () => {
    const seen: (string | number | undefined)[] = [];
    const slow = protect('slow', {}, async (_args, context: ToolContext) => {
      seen.push(context.progressToken);
      if (context.progressToken !== undefined) {
        for (const progress of [0, 50, 100]) {
          await context.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: context.progressToken, progress, total: 100 },
          });
        }
      }
      return 'done';
    });
    const a = await app([slow]);
    const tc = await connectClient(a.mcp, 'c1');
    await tc.client.callTool({ name: 'oauth_authenticate', arguments: { jwt_token: a.token(JOHN) } });

    const progress: Progress[] = [];
    const result = await tc.client.callTool({ name: 'slow', arguments: {} }, CallToolResultSchema, {
      onprogress: (p) => progress.push(p),
    });
    expect(textOf(result)).toBe('done');
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [0, 100],
      [50, 100],
      [100, 100],
    ]);
    // Without onprogress the SDK client sends no token, and the handler sees none.
    await tc.client.callTool({ name: 'slow', arguments: {} });
    expect(seen).toEqual([expect.anything(), undefined]);
  });
});

describe('context.sendRequest', () => {
  it('asks the client to sample and to elicit, and returns the validated answers', async () => {
    const ask = publicTool('ask', async (_args, context: PublicToolContext) => {
      const sampled = await context.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: { type: 'text', text: 'ping?' } }], maxTokens: 10 },
        },
        CreateMessageResultSchema,
      );
      const elicited = await context.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message: 'Who are you?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
          },
        },
        ElicitResultSchema,
      );
      const said = sampled.content.type === 'text' ? sampled.content.text : '?';
      return `${said} / ${elicited.action} ${JSON.stringify(elicited.content)}`;
    });
    const a = await app([ask]);
    const tc = await connectClient(a.mcp, 'c1', { sampling: {}, elicitation: {} });
    tc.client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
      role: 'assistant',
      model: 'test-model',
      content: { type: 'text', text: `pong to ${JSON.stringify(request.params.messages[0]?.content)}` },
    }));
    tc.client.setRequestHandler(ElicitRequestSchema, async (request) => ({
      action: 'accept',
      content: { name: `answer to ${request.params.message}` },
    }));

    const result = await tc.client.callTool({ name: 'ask', arguments: {} });
    expect(textOf(result)).toBe(
      'pong to {"type":"text","text":"ping?"} / accept {"name":"answer to Who are you?"}',
    );
  });

  it('cancels its request to the client when the call is cancelled', async () => {
    const wait = publicTool('wait_for_user', async (_args, context) => {
      await context.sendRequest(
        {
          method: 'elicitation/create',
          params: { message: 'Still there?', requestedSchema: { type: 'object', properties: {} } },
        },
        ElicitResultSchema,
      );
      return 'answered';
    });
    const a = await app([wait]);
    const tc = await connectClient(a.mcp, 'c1', { elicitation: {} });
    let asked = 0;
    let cancelled = false;
    tc.client.setRequestHandler(ElicitRequestSchema, async (_request, extra) => {
      // The first question is answered: the SDK ignores a cancellation of request id 0, the first one sent.
      if (++asked === 1) return { action: 'decline' };
      return new Promise((_resolve, reject) => {
        extra.signal.addEventListener('abort', () => {
          cancelled = true;
          reject(new Error('cancelled'));
        });
      });
    });

    expect(textOf(await tc.client.callTool({ name: 'wait_for_user', arguments: {} }))).toBe('answered');
    const controller = new AbortController();
    const call = tc.client.callTool({ name: 'wait_for_user', arguments: {} }, CallToolResultSchema, {
      signal: controller.signal,
    });
    await eventually(() => expect(asked).toBe(2));
    controller.abort();
    await expect(call).rejects.toThrow();
    await eventually(() => expect(cancelled).toBe(true));
  });
});

describe('context.log and logging/setLevel', () => {
  it('declares the logging capability', async () => {
    const a = await app([logEveryLevel]);
    const tc = await connectClient(a.mcp, 'c1');
    expect(tc.client.getServerCapabilities()?.logging).toEqual({});
  });

  it('sends every level until the client sets one, then only that level and above, per connection', async () => {
    const a = await app([logEveryLevel]);
    const quiet = await connectClient(a.mcp, 'quiet');
    const chatty = await connectClient(a.mcp, 'chatty');
    const quietLogs = collectLogs(quiet);
    const chattyLogs = collectLogs(chatty);

    await quiet.client.callTool({ name: 'log_levels', arguments: {} });
    expect(quietLogs).toEqual([
      'debug:at debug',
      'info:at info',
      'warning:at warning',
      'error:at error',
      'notice:named@billing',
    ]);

    quietLogs.length = 0;
    await expect(quiet.client.setLoggingLevel('warning')).resolves.toEqual({});
    await quiet.client.callTool({ name: 'log_levels', arguments: {} });
    await chatty.client.callTool({ name: 'log_levels', arguments: {} });
    expect(quietLogs).toEqual(['warning:at warning', 'error:at error']);
    expect(chattyLogs).toHaveLength(5);
  });
});
