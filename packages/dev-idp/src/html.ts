/** Escapes a value for HTML text and double- or single-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const STYLE = `body{font-family:system-ui,sans-serif;background:#f4f4f6;margin:0;padding:40px 16px}
main{max-width:380px;margin:0 auto;background:#fff;border-radius:8px;padding:24px 28px;box-shadow:0 1px 3px #0002}
h1{font-size:1.3em;margin:0 0 12px}label{display:block;margin:12px 0 4px;font-size:.9em}
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;cursor:pointer}
.error{color:#b00020}.meta{color:#555;font-size:.85em;word-break:break-all}
.dev{background:#fff3cd;color:#664d03;padding:6px 10px;border-radius:4px;font-size:.8em;margin-bottom:16px}`;

/**
 * A complete HTML page. `body` must already be escaped: every caller builds it with {@link escapeHtml}, or
 * passes markup oidc-provider generated (its device flow forms).
 */
export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<p class="dev">AuthSec development IdP: for development and tests only.</p>
${body}
</main>
</body>
</html>`;
}

/** What the sign-in page shows besides the form. */
export interface LoginPageInput {
  /** Form target: the interaction URL the page was served at. */
  action: string;
  /** Client display name (or id). */
  client: string;
  /** Requested scopes, for display. */
  scope?: string;
  /** Requested resource indicators, for display. */
  resources: readonly string[];
  /** Value to put back into the `login` field after a failed attempt. */
  login?: string;
  /** Error to show above the form. */
  error?: string;
}

/**
 * The sign-in page. Its form has exactly two fields, `login` (the email) and `password`, and POSTs them as
 * `application/x-www-form-urlencoded` to `action`. No JavaScript.
 */
export function loginPage(input: LoginPageInput): string {
  const details = [
    `<p class="meta">Application: ${escapeHtml(input.client)}</p>`,
    input.scope ? `<p class="meta">Scope: ${escapeHtml(input.scope)}</p>` : '',
    input.resources.length
      ? `<p class="meta">Resource: ${input.resources.map(escapeHtml).join(', ')}</p>`
      : '',
  ].join('\n');
  return page(
    'Sign in',
    `<h1>Sign in</h1>
${details}
${input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''}
<form method="post" action="${escapeHtml(input.action)}">
<label for="login">Email</label>
<input id="login" type="email" name="login" autocomplete="username" required autofocus value="${escapeHtml(input.login ?? '')}">
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
  );
}

/** A page with a heading and one message (errors, notices). */
export function messagePage(title: string, message: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}
