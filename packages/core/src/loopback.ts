/**
 * The one definition of "loopback" in AuthSec: every check that trusts or refuses a host for being on this
 * machine (resource URLs, `Host` and `Origin` headers, peer addresses, plain-http URLs) asks this function.
 */

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]', '::ffff:127.0.0.1', '[::ffff:127.0.0.1]']);
const LOOPBACK_V4 = /^127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * Whether a host name or address is the loopback interface: `localhost`, `127.0.0.0/8`, `::1` (with or without
 * brackets) and the IPv4-mapped `::ffff:127.0.0.1`. Case-insensitive; a trailing dot (`localhost.`) is not
 * accepted, since resolvers may treat it as another name.
 */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase();
  return LOOPBACK_NAMES.has(name) || LOOPBACK_V4.test(name);
}
