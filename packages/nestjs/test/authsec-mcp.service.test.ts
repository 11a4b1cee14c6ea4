import 'reflect-metadata';
import { ADMIN } from '@authsec/adapter-conformance';
import type { ToolContext } from '@authsec/mcp';
import { Inject, Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { describe, expect, it } from 'vitest';
import { AuthSecMcpService, AuthSecModule, AuthSecTool } from '../src/index.js';
import { createTestEngine, ISSUER, RESOURCE_URL } from './helpers.js';
import { SampleToolsProvider } from './sample-tools.provider.js';

@Injectable()
class GreetingService {
  greet(name: string) {
    return `Hi ${name}`;
  }
}

@Injectable()
class ToolsWithDependency {
  constructor(@Inject(GreetingService) private readonly greetings: GreetingService) {}

  @AuthSecTool('greet', { roles: ['admin'] }, { description: 'Greets.' })
  greet(args: { _user_info: { sub: string } }, context: ToolContext) {
    return `${this.greetings.greet(args._user_info.sub)} of ${context.tenant}`;
  }

  notATool() {
    return 'plain';
  }
}

describe('@AuthSecTool discovery', () => {
  it('finds decorated provider methods in declaration order, with requirement and description', async () => {
    const { authsec } = createTestEngine();
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuthSecModule.forRoot({ authsec, resourceUrl: RESOURCE_URL, authorizationServers: [ISSUER] }),
      ],
      providers: [SampleToolsProvider, GreetingService, ToolsWithDependency],
    }).compile();
    await moduleRef.init();
    try {
      const service = moduleRef.get(AuthSecMcpService);
      const names = service.tools.map((tool) => tool.name);
      expect(names).toEqual([
        'hello',
        'calculator',
        'admin_panel',
        'admin_dashboard',
        'create_resource',
        'view_analytics',
        'view_reports',
        'deploy_production',
        'engineering_tools',
        'sensitive_operations',
        'list_my_repos',
        'greet',
      ]);
      const greet = service.tools.find((tool) => tool.name === 'greet')!;
      expect(greet.requirement).toEqual({ roles: ['admin'] });
      expect(greet.description).toBe('Greets.');
      expect(service.mcpServer?.tools.map((tool) => tool.name)).toEqual(names);
      // The method runs on its provider instance, with its injected dependencies.
      const context = {
        user: { sub: ADMIN.sub },
        principal: { subject: ADMIN.sub },
        tenant: ADMIN.tenant_id,
        sessionId: undefined,
        signal: new AbortController().signal,
      } as unknown as ToolContext;
      const result = await greet.run({}, context);
      expect(result.content).toEqual([{ type: 'text', text: 'Hi user-john of acme-corp' }]);
    } finally {
      await moduleRef.close();
    }
  });

  it('refuses a tool name declared twice (at start, not on the first call)', async () => {
    @Injectable()
    class Duplicate {
      @AuthSecTool('hello')
      hello() {
        return 'again';
      }
    }
    const { authsec } = createTestEngine();
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuthSecModule.forRoot({ authsec, resourceUrl: RESOURCE_URL, authorizationServers: [ISSUER] }),
      ],
      providers: [SampleToolsProvider, Duplicate],
    }).compile();
    await expect(moduleRef.init()).rejects.toThrow(/declared twice/);
    await authsec.close();
  });
});
