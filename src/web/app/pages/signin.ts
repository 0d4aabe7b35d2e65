import { html } from "htm/preact";
import type { VNode } from "preact";
import { useState } from "preact/hooks";
import { describeError, setToken, tokenWorks } from "../api.ts";

/** The only thing shown without a token: no data, no navigation. */
export function SignIn({ message, onSignedIn }: { message: string; onSignedIn: () => void }): VNode {
  const [token, setTokenText] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setError("Enter the API token.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      if (await tokenWorks(value)) {
        setToken(value);
        onSignedIn();
      } else {
        setError("The control plane did not accept this token.");
      }
    } catch (e) {
      setError(`Cannot reach the control plane: ${describeError(e)}`);
    } finally {
      setBusy(false);
    }
  };

  return html`<main class="signin" id="main">
    <form class="card signin-card" onSubmit=${submit} aria-labelledby="signin-title" novalidate>
      <div class="brand brand-large" aria-hidden="true"><span class="brand-mark"></span>Pith</div>
      <h1 id="signin-title">Sign in</h1>
      <p class="muted">Enter the control plane's API token. It is in <code>$PITH_HOME/token</code> (default <code>~/.pith/token</code>) on the control plane's host.</p>
      ${message ? html`<p class="note" role="status">${message}</p>` : null}
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" spellcheck="false" required
        value=${token} onInput=${(e: Event) => setTokenText((e.target as HTMLInputElement).value)}
        aria-invalid=${error ? "true" : "false"} aria-describedby=${error ? "token-error" : undefined} />
      ${error ? html`<p class="field-error" id="token-error" role="alert">${error}</p>` : null}
      <button type="submit" class="button primary" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
      <p class="muted small">The token is kept only for this browser tab (sessionStorage).</p>
    </form>
  </main>`;
}
