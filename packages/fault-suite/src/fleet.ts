/**
 * The server side of the fault suite and the soak, in a child process of its own (so that a crash is seen as
 * the process exiting, and the load generator does not share its event loop): the four HTTP mounts of the
 * sample apps (Express, Fastify, NestJS on Express and on Fastify; each app's own mount function, as its
 * `main.ts` runs it) on one engine, over the PostgreSQL storage: claims validated in the directory, every
 * decision in the tenant's audit log through the PostgreSQL audit sink.
 *
 * `node dist/fleet.js` with `AUTHSEC_FLEET` set to a JSON {@link FleetConfig}. Protocol with the parent (IPC):
 * the child sends `{ type: 'ready', urls }` once every mount serves; it answers `{ type: 'stats' }` (and
 * `{ type: 'flush' }`, after flushing the audit sink) with a {@link FleetStats}; on `{ type: 'close' }` it
 * closes the mounts and the storage, answers `{ type: 'closed', stats }` and exits 0. It exits 1 when the
 * parent goes away. A crash (an uncaught exception, an unhandled rejection: Node's default) ends it with
 * another code, which the parent reports.
 */

import { createAuthSec, createLogger, parseMasterKey } from '@authsec/core';
import { openStorage } from '@authsec/core/postgres';
import { mountExpressApp } from '@authsec/example-express-server/app';
import { mountFastifyApp } from '@authsec/example-fastify-server/app';
import { mountNestApp } from '@authsec/example-nestjs-server/app';
import {
  createSampleTools,
  type SampleHttpMountFunction,
  type ServedSampleHttpApp,
  serveSampleHttpApp,
} from '@authsec/sample-tools';
import type { FleetCommand, FleetConfig, FleetMessage, FleetStats, MountName } from './fleet-protocol.js';
import { MOUNTS } from './fleet-protocol.js';
import { freePort } from './own-postgres.js';

const MOUNT_FUNCTIONS: Readonly<Record<MountName, SampleHttpMountFunction>> = {
  express: mountExpressApp,
  fastify: mountFastifyApp,
  'nest-express': (context) => mountNestApp(context, 'express'),
  'nest-fastify': (context) => mountNestApp(context, 'fastify'),
};

async function main(): Promise<void> {
  const config = JSON.parse(process.env.AUTHSEC_FLEET ?? 'null') as FleetConfig | null;
  if (!config) throw new Error('AUTHSEC_FLEET is not set');
  const send = (message: FleetMessage) => process.send?.(message);
  // Errors only: a refusal under an outage is logged once per change of state, a warning per refused call.
  const logger = createLogger({ level: 'error', name: 'fault-fleet' });
  const storage = await openStorage({
    databaseUrl: config.databaseUrl,
    masterKey: parseMasterKey(config.masterKey),
    issuers: config.issuers,
    logger,
    ...(config.refuseAfterMs === undefined ? {} : { audit: { refuseAfterMs: config.refuseAfterMs } }),
  });
  const ports = await Promise.all(MOUNTS.map(() => freePort()));
  const urls = Object.fromEntries(MOUNTS.map((m, i) => [m, `http://127.0.0.1:${ports[i]}/mcp`])) as Record<
    MountName,
    string
  >;
  // One engine for the four mounts (each its own audience), as one process serves one engine.
  const authsec = createAuthSec({
    issuers: config.issuers.map((issuer) => ({ issuer })),
    audience: Object.values(urls),
    directory: storage.directory,
    audit: { sinks: [storage.audit] },
    logger,
  });
  const tools = createSampleTools();
  const served: ServedSampleHttpApp[] = [];
  for (const [i, mount] of MOUNTS.entries()) {
    served.push(
      await serveSampleHttpApp({
        host: '127.0.0.1',
        port: ports[i]!,
        resourceUrl: urls[mount],
        mount: MOUNT_FUNCTIONS[mount],
        // The engine and the storage are the fleet's: closed once, after every mount.
        open: async () => ({
          tools,
          authsec,
          directory: storage.directory,
          issuers: config.issuers.slice(0, 1),
          close: async () => {},
        }),
      }),
    );
  }
  const stats = (): FleetStats => {
    const memory = process.memoryUsage();
    return {
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      audit: storage.audit.state(),
    };
  };
  let closing = false;
  process.on('message', (command: FleetCommand) => {
    if (command?.type === 'stats') {
      // A collection first, so that RSS samples compare live memory rather than garbage (with --expose-gc).
      globalThis.gc?.();
      send({ type: 'stats', stats: stats() });
    } else if (command?.type === 'flush') {
      void storage.audit.flush().then(
        () => send({ type: 'stats', stats: stats() }),
        () => send({ type: 'stats', stats: stats() }),
      );
    } else if (command?.type === 'close' && !closing) {
      closing = true;
      void (async () => {
        for (const app of served) await app.close();
        await authsec.close();
        const last = stats();
        await storage.close();
        // Exit once the answer is out: a pool or timer left open would otherwise keep the process up.
        process.send?.({ type: 'closed', stats: last } satisfies FleetMessage, () => process.exit(0));
      })();
    }
  });
  process.on('disconnect', () => {
    if (!closing) process.exit(1);
  });
  send({ type: 'ready', urls });
}

await main();
