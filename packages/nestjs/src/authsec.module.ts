import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { AUTHSEC_ENGINE, AUTHSEC_MODULE_OPTIONS, AUTHSEC_RESOURCE_SERVER } from './authsec.constants.js';
import type { AuthSecModuleAsyncOptions, AuthSecModuleOptions } from './authsec.options.js';
import { engineProviders } from './authsec.providers.js';
import { AuthSecGuard } from './authsec.route.js';
import { AuthSecMcpService } from './authsec-mcp.service.js';

const shared: Provider[] = [...engineProviders(AUTHSEC_MODULE_OPTIONS), AuthSecGuard, AuthSecMcpService];

const exported = [AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER, AuthSecGuard, AuthSecMcpService];

/**
 * Registers AuthSec in a Nest application (global): the engine, the resource server, {@link AuthSecGuard}, and
 * the MCP endpoint serving every `@AuthSecTool` method at the resource URL's path with the RFC 9728 metadata.
 */
@Module({})
export class AuthSecModule {
  /** Registers the module with options known up front. Bad options throw at start. */
  static forRoot(options: AuthSecModuleOptions): DynamicModule {
    return {
      module: AuthSecModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [{ provide: AUTHSEC_MODULE_OPTIONS, useValue: options }, ...shared],
      exports: exported,
    };
  }

  /** Registers the module with options from a factory (configuration services, secrets...). */
  static forRootAsync(options: AuthSecModuleAsyncOptions): DynamicModule {
    return {
      module: AuthSecModule,
      global: true,
      imports: [DiscoveryModule, ...(options.imports ?? [])],
      providers: [
        {
          provide: AUTHSEC_MODULE_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => unknown,
          inject: options.inject ?? [],
        },
        ...shared,
      ],
      exports: exported,
    };
  }
}
