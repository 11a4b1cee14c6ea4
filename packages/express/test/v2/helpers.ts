import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeAll as closeClients } from '@authsec/adapter-conformance/v2';
import type { Express } from 'express';

export { ADMIN, ADMIN_TOOLS, ANALYST, ANALYST_TOOLS } from '@authsec/adapter-conformance';
export {
  attempt,
  connect,
  ERAS,
  type Era,
  type Fixture,
  fixture,
  ISSUER,
  text,
} from '@authsec/adapter-conformance/v2';

const servers: Server[] = [];
/** Listens with `app` on 127.0.0.1 (`port`, default a free one); closed by {@link closeAll}. */
export async function listen(app: Express, port = 0): Promise<string> {
  const server = app.listen(port, '127.0.0.1');
  servers.push(server);
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes the clients, then the servers. */
export async function closeAll(): Promise<void> {
  await closeClients();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
