/**
 * The sample tool set of architecture.md, written once and imported by every sample app (stdio, Express,
 * Fastify, NestJS), so that all of them expose exactly the same tools with exactly the same requirements.
 *
 * @packageDocumentation
 */
import { AuthSecError, type Requirement } from '@authsec/core';
import { type AuthSecTool, protect } from '@authsec/mcp';
import { z } from 'zod';

/** The requirement of every sample tool, by name (the table in architecture.md). */
export const SAMPLE_REQUIREMENTS: Readonly<Record<string, Requirement>> = Object.freeze({
  hello: {},
  calculator: {},
  admin_panel: { roles: ['admin'] },
  admin_dashboard: { roles: ['admin'] },
  create_resource: { scopes: ['write'] },
  view_analytics: { scopes: ['read'], resources: ['analytics'], requireAll: true },
  view_reports: { roles: ['admin', 'manager', 'analyst'] },
  deploy_production: {
    roles: ['admin', 'deployer'],
    scopes: ['write'],
    resources: ['production'],
    requireAll: true,
  },
  engineering_tools: { groups: ['engineering', 'devops'] },
  sensitive_operations: {
    roles: ['admin', 'superuser'],
    groups: ['security-team'],
    scopes: ['write', 'admin'],
    resources: { allOf: ['production', 'sensitive-data'] },
    requireAll: true,
  },
  list_my_repos: { scopes: ['read'] },
});

/** The service `list_my_repos` reads its GitHub token from (the brief's name). */
export const GITHUB_SERVICE = 'GitHub API Integration';

/** The GitHub API base URL used when the stored service has no `url`. */
export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';

/** Options of {@link createSampleTools}. */
export interface SampleToolsOptions {
  /** `fetch` for `list_my_repos`. Default: global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Timeout of the GitHub API call, ms. Default 10000. */
  readonly timeoutMs?: number;
}

const text = (value: string) => [{ type: 'text', text: value }] as const;

/** Builds the sample tool set, in the order of architecture.md. */
export function createSampleTools(options: SampleToolsOptions = {}): AuthSecTool[] {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const r = SAMPLE_REQUIREMENTS;
  return [
    protect('hello', r.hello!, (args) => text(`Hello, ${args._user_info.email ?? args._user_info.sub}!`), {
      description: 'Greets the signed-in user.',
    }),
    protect(
      'calculator',
      r.calculator!,
      (args) => {
        const { operation, a, b } = args;
        if (operation === 'divide' && b === 0) throw new AuthSecError('BAD_REQUEST', 'Cannot divide by zero');
        const result =
          operation === 'add'
            ? a + b
            : operation === 'subtract'
              ? a - b
              : operation === 'multiply'
                ? a * b
                : a / b;
        return text(`${a} ${operation} ${b} = ${result}`);
      },
      {
        description: 'Adds, subtracts, multiplies or divides two numbers.',
        inputSchema: z.object({
          operation: z.enum(['add', 'subtract', 'multiply', 'divide']),
          a: z.number(),
          b: z.number(),
        }),
      },
    ),
    protect('admin_panel', r.admin_panel!, () => text('Admin panel accessed'), {
      description: 'The admin panel (role admin).',
    }),
    protect(
      'admin_dashboard',
      r.admin_dashboard!,
      (args) => text(`Welcome to admin dashboard, ${args._user_info.email ?? args._user_info.sub}!`),
      { description: 'The admin dashboard (role admin).' },
    ),
    protect(
      'create_resource',
      r.create_resource!,
      (args) => text(`Resource '${args.name ?? 'Unnamed'}' created successfully!`),
      {
        description: 'Creates a resource (scope write).',
        inputSchema: z.object({ name: z.string().min(1).max(200).optional() }),
      },
    ),
    protect(
      'view_analytics',
      r.view_analytics!,
      (_args, context) => text(`Analytics of tenant ${context.tenant}: 42 active projects`),
      { description: 'Analytics (scope read and resource analytics).' },
    ),
    protect('view_reports', r.view_reports!, () => text('Business reports'), {
      description: 'Business reports (role admin, manager or analyst).',
    }),
    protect('deploy_production', r.deploy_production!, () => text('Deployment initiated'), {
      description: 'Deploys to production (admin or deployer, and write, and production).',
    }),
    protect('engineering_tools', r.engineering_tools!, () => text('Engineering dashboard'), {
      description: 'Engineering dashboard (group engineering or devops).',
    }),
    protect('sensitive_operations', r.sensitive_operations!, () => text('Sensitive operation completed'), {
      description: 'Sensitive operations (every condition of the brief).',
    }),
    protect(
      'list_my_repos',
      r.list_my_repos!,
      async (_args, context) => {
        // The token goes from the credential store to the GitHub call and nowhere else: not into the result,
        // not into an error message.
        const service = await context.services.getServiceCredentials(GITHUB_SERVICE);
        const token = service.credentials.access_token ?? service.credentials.token;
        if (!token) throw new AuthSecError('NOT_FOUND', `Service '${GITHUB_SERVICE}' has no access_token`);
        const base = (service.url ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, '');
        let response: Response;
        try {
          response = await doFetch(`${base}/user/repos`, {
            headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json' },
            signal: AbortSignal.any([context.signal, AbortSignal.timeout(timeoutMs)]),
            redirect: 'error',
          });
        } catch (cause) {
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'The GitHub API is unreachable', { cause });
        }
        if (!response.ok) {
          throw new AuthSecError('SERVICE_UNAVAILABLE', `The GitHub API answered ${response.status}`);
        }
        const repos = (await response.json()) as { full_name?: unknown; stargazers_count?: unknown }[];
        if (!Array.isArray(repos))
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'The GitHub API answered no list');
        const lines = repos
          .slice(0, 10)
          .map((repo) => `- ${String(repo.full_name)} (${Number(repo.stargazers_count) || 0} ⭐)`);
        return text(`Your GitHub Repositories:\n${lines.join('\n')}`);
      },
      { description: 'Lists your GitHub repositories with the tenant credentials (scope read).' },
    ),
  ];
}

export {
  runSampleHttpApp,
  type SampleHttpAppOptions,
  type SampleHttpContext,
  type SampleHttpMount,
  type SampleHttpMountFunction,
  type SampleHttpOpened,
  type SampleHttpServeOptions,
  type ServedSampleHttpApp,
  serveSampleHttpApp,
} from './http-app.js';
