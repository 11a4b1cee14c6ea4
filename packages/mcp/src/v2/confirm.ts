/**
 * `approval: 'confirm'`: before a tool runs, its caller confirms through a form elicitation that names the tool
 * and shows a redacted summary of the arguments. On 2026-07-28 the question is an `input_required` round trip
 * whose `requestState` is sealed to the caller, the tool and the exact arguments (a retry with other arguments
 * is refused before any handler runs); on the 2025 era the SDK asks through `elicitation/create` on the session.
 * A client that declared no form elicitation is refused by the SDK (`-32021` on 2026-07-28, an error result on
 * the 2025 era): the tool never runs unconfirmed.
 */

import { type AuthSec, AuthSecError, type Principal } from '@authsec/core';
import type { CallToolResult, InputRequiredResult } from '@modelcontextprotocol/server';
import { refusalResult } from '../result.js';
import type { AuthSecContext } from './server.js';

/** The key of the confirmation among the round's input requests and responses. */
export const CONFIRM_INPUT = 'authsec/confirm';
// The sealed state of a confirmation round: asked (waiting for the answer), or done (the handler's own rounds,
// its state inside, so a later round never asks again).
const MARK = 'authsec/confirm';

interface Asked {
  readonly [MARK]: 'asked';
}
interface Done {
  readonly [MARK]: 'done';
  readonly state: unknown;
}

const SECRET_NAME = /pass(word)?|secret|token|key|credential|auth/i;
const MAX_SHOWN = 40;

/**
 * What the form shows of the arguments: each top-level name with a short value (numbers, booleans, strings up to
 * 40 characters), `[redacted]` for a name that looks secret, and sizes for lists and objects. Never the whole
 * argument set (it may be large, or hold what the caller should not have to read twice).
 */
export function argumentSummary(args: Readonly<Record<string, unknown>>): string {
  const parts = Object.entries(args).map(([name, value]) => {
    if (SECRET_NAME.test(name)) return `${name}: [redacted]`;
    if (typeof value === 'number' || typeof value === 'boolean' || value === null)
      return `${name}: ${String(value)}`;
    if (typeof value === 'string')
      return `${name}: ${JSON.stringify(value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value)}`;
    if (Array.isArray(value)) return `${name}: [${value.length} item(s)]`;
    return `${name}: {…}`;
  });
  return parts.length === 0 ? '(no arguments)' : parts.join(', ');
}

function markOf(state: unknown): 'asked' | 'done' | undefined {
  const mark = (state as { [MARK]?: unknown } | null | undefined)?.[MARK];
  return mark === 'asked' || mark === 'done' ? mark : undefined;
}

function accepted(response: unknown): boolean {
  const r = response as { action?: unknown; content?: { confirm?: unknown } } | undefined;
  return r?.action === 'accept' && r.content?.confirm === true;
}

/**
 * The confirmation step of a call: a result to answer with (the question, or a refusal), or the context the
 * handler runs with (its own state and input responses, without the confirmation's; its `inputRequired` keeps
 * the confirmation for later rounds). Audited as `tool.confirm`: `allow` when confirmed, `deny` when declined.
 */
export function confirmCall(
  authsec: AuthSec,
  name: string,
  args: Readonly<Record<string, unknown>>,
  principal: Principal,
  context: AuthSecContext,
): { readonly answer: CallToolResult | InputRequiredResult } | { readonly context: AuthSecContext } {
  const mark = markOf(context.state);
  const run = (state: unknown, inputResponses: AuthSecContext['inputResponses']) => ({
    context: {
      ...context,
      state,
      inputResponses,
      inputRequired: (spec: Parameters<AuthSecContext['inputRequired']>[0]) =>
        context.inputRequired({
          ...(spec.inputRequests === undefined ? {} : { inputRequests: spec.inputRequests }),
          state: { [MARK]: 'done', state: spec.state } satisfies Done,
        }),
    },
  });
  if (mark === 'done') return run((context.state as Done).state, context.inputResponses);
  if (mark === 'asked') {
    const { [CONFIRM_INPUT]: response, ...rest } = context.inputResponses ?? {};
    const confirmed = accepted(response);
    authsec.audit({
      action: 'tool.confirm',
      decision: confirmed ? 'allow' : 'deny',
      principal,
      target: name,
      ...(confirmed ? {} : { reason: 'NOT_CONFIRMED' as const }),
      arguments: args,
    });
    if (!confirmed)
      return {
        answer: refusalResult(
          new AuthSecError('NOT_CONFIRMED', `The call to '${name}' was not confirmed; it did not run`),
        ) as CallToolResult,
      };
    return run(undefined, Object.keys(rest).length === 0 ? undefined : rest);
  }
  return {
    answer: context.inputRequired({
      inputRequests: {
        [CONFIRM_INPUT]: {
          method: 'elicitation/create',
          params: {
            mode: 'form',
            message: `Confirm: run '${name}' with ${argumentSummary(args)}?`,
            requestedSchema: {
              type: 'object',
              properties: { confirm: { type: 'boolean', title: `Run ${name}` } },
              required: ['confirm'],
            },
          },
        },
      },
      state: { [MARK]: 'asked' } satisfies Asked,
    }),
  };
}
