/**
 * The servers the conformance suite runs against: each HTTP sample app's own framework mount (the function its
 * `main.ts` runs), NestJS on both of its platforms, and the raw `node:http` handler of `@authsec/mcp`, all in
 * conformance mode on 127.0.0.1 with a port the system chooses.
 */
import { mountExpressApp } from '@authsec/example-express-server/app';
import { mountFastifyApp } from '@authsec/example-fastify-server/app';
import { mountNestApp } from '@authsec/example-nestjs-server/app';
import { createAuthSecServer, startHttpServer } from '@authsec/mcp';
import { type SampleHttpMountFunction, serveSampleHttpApp } from '@authsec/sample-tools';
import { openConformanceMode } from './allow-all.js';

const HOST = '127.0.0.1';

/** The apps' mounts, by target name. */
const MOUNTS: Readonly<Record<string, SampleHttpMountFunction>> = {
  'express-server': mountExpressApp,
  'fastify-server': mountFastifyApp,
  'nestjs-server/express': (context) => mountNestApp(context, 'express'),
  'nestjs-server/fastify': (context) => mountNestApp(context, 'fastify'),
};

/** Every target, in the order of the results table. */
export const TARGETS = [
  'express-server',
  'fastify-server',
  'nestjs-server/express',
  'nestjs-server/fastify',
  'node:http',
] as const;

/** One server the suite runs against. */
export type ConformanceTarget = (typeof TARGETS)[number];

/** A running conformance server. */
export interface ConformanceServer {
  readonly target: ConformanceTarget;
  /** The MCP endpoint. */
  readonly url: string;
  close(): Promise<void>;
}

async function startNodeHttp(): Promise<ConformanceServer> {
  // startHttpServer derives its URL from the port it binds; no token is verified, so the audience is nominal.
  const { authsec, tools, issuers, close } = openConformanceMode(`http://${HOST}/mcp`);
  const server = createAuthSecServer({ name: 'authsec-conformance', version: '0.0.0', tools, authsec });
  const running = await startHttpServer({
    server,
    authsec,
    host: HOST,
    port: 0,
    authorizationServers: issuers,
  });
  return {
    target: 'node:http',
    url: running.url,
    async close() {
      await running.close();
      await server.close();
      await close();
    },
  };
}

/** Starts `target` in conformance mode (authorization off, the suite's tools, a warning logged). */
export async function startConformanceTarget(target: ConformanceTarget): Promise<ConformanceServer> {
  if (target === 'node:http') return startNodeHttp();
  const served = await serveSampleHttpApp({
    host: HOST,
    port: 0,
    open: async (resourceUrl) => openConformanceMode(resourceUrl),
    mount: MOUNTS[target]!,
  });
  return { target, url: served.resourceUrl, close: () => served.close() };
}
