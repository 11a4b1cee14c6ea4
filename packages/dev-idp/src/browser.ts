/**
 * A scripted browser for the dev IdP's pages, for tests and the demo: it keeps cookies, follows redirects by
 * hand (so the caller sees where the IdP sends the user back), and fills in the sign-in and device forms the
 * way a person would in a real browser. Only for this IdP's own plain HTML forms.
 */

/** Cookies, manual redirects and form posts over `fetch`. */
export class ScriptedBrowser {
  readonly #cookies = new Map<string, { value: string; path: string }>();

  /** The `Cookie` header this browser would send to `url`. */
  cookieHeader(url: URL): string {
    return [...this.#cookies.entries()]
      .filter(([, cookie]) => url.pathname.startsWith(cookie.path))
      .map(([key, cookie]) => `${key.slice(0, key.indexOf('|'))}=${cookie.value}`)
      .join('; ');
  }

  #store(response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', val = ''] = attribute.split('=');
        if (key.toLowerCase() === 'path') path = val;
        if (key.toLowerCase() === 'expires' && Date.parse(val) < Date.now()) expired = true;
        if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      }
      if (expired) this.#cookies.delete(`${name}|${path}`);
      else this.#cookies.set(`${name}|${path}`, { value, path });
    }
  }

  /** One request, no redirect following; cookies sent and stored. */
  async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(target);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.#store(response);
    return response;
  }

  /** A form POST. */
  post(url: string | URL, fields: Record<string, string>): Promise<Response> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /**
   * Follows redirects while they stay on `origin`. Returns the first response that is not such a redirect, its
   * URL, and `location` when the last hop leaves the origin (the redirect back to the client).
   */
  async follow(
    first: Response,
    from: string | URL,
    origin: string,
  ): Promise<{ response: Response; url: URL; location?: URL }> {
    let response = first;
    let url = new URL(from);
    for (let hops = 0; hops < 10; hops++) {
      if (response.status < 300 || response.status >= 400) return { response, url };
      const location = new URL(response.headers.get('location') ?? '', url);
      await response.arrayBuffer();
      if (location.origin !== origin) return { response, url, location };
      url = location;
      response = await this.request(location);
    }
    throw new Error('too many redirects');
  }
}

/** The `<input>` fields of the first form of a page, and its action. */
export function formOf(html: string): { action: string; fields: Map<string, string> } {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error('no form on the page');
  const action = /action="([^"]*)"/i.exec(form[1] ?? '')?.[1] ?? '';
  const fields = new Map<string, string>();
  for (const input of (form[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const attributes = input[1] ?? '';
    const name = /name="([^"]*)"/i.exec(attributes)?.[1];
    if (name) fields.set(name, /value="([^"]*)"/i.exec(attributes)?.[1] ?? '');
  }
  return { action: action.replaceAll('&amp;', '&'), fields };
}

/**
 * Signs in at an authorization URL with the sign-in form (`login`, `password`) and returns where the IdP sent
 * the browser back (the redirect URI with `code` and `state`, or `error`), without requesting it.
 */
export async function signIn(
  authorizationUrl: URL | string,
  login: string,
  password: string,
  browser = new ScriptedBrowser(),
): Promise<URL> {
  const start = new URL(authorizationUrl);
  const first = await browser.follow(await browser.request(start), start, start.origin);
  if (first.location) return first.location;
  const form = formOf(await first.response.text());
  const action = new URL(form.action, first.url);
  const posted = await browser.post(action, { login, password });
  const end = await browser.follow(posted, action, start.origin);
  if (!end.location) throw new Error(`sign-in did not redirect back (HTTP ${end.response.status})`);
  return end.location;
}

/** Completes a device login at the verification URI: enter the code, confirm, sign in. */
export async function approveDevice(
  verificationUri: string,
  userCode: string,
  login: string,
  password: string,
  browser = new ScriptedBrowser(),
): Promise<string> {
  const verification = new URL(verificationUri);
  const input = formOf(await (await browser.request(verification)).text());
  const confirmPage = await browser.post(new URL(input.action, verification), {
    xsrf: input.fields.get('xsrf') ?? '',
    user_code: userCode,
  });
  const confirm = formOf(await confirmPage.text());
  const confirmed = await browser.post(
    new URL(confirm.action, verification),
    Object.fromEntries(confirm.fields),
  );
  const signInPage = await browser.follow(confirmed, verification, verification.origin);
  const login_ = formOf(await signInPage.response.text());
  const posted = await browser.post(new URL(login_.action, signInPage.url), { login, password });
  const done = await browser.follow(posted, signInPage.url, verification.origin);
  return done.response.text();
}
