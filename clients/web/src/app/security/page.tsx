"use client";

import Link from "next/link";
import { useCallback, useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { UsernameHint } from "@/components/UsernameHint";
import { fileNameOf, formatDate, providerLabel } from "@/components/format";
import { attempt } from "@/components/request";
import { useRequireSignIn } from "@/components/SessionProvider";
import { useCurrentUser } from "@/components/useAccount";
import { api, bff, fieldError, type Problem } from "@/lib/api";
import type { components } from "@/lib/api-schema";
import { messageFor, messageForCode } from "@/lib/messages";

type Mfa = components["schemas"]["MfaStatusOut"];
type Enrolment = components["schemas"]["TotpEnrolmentOut"];
type Identity = components["schemas"]["IdentityOut"];

const HERE = "/security";

/** A problem's message, with a way to sign in again when that is what it takes. */
function ProblemAlert({ problem }: { problem: Problem | null }) {
  if (!problem) return null;
  const signInAgain = problem.code === "reauthentication_required" || problem.code === "recent_sign_in_required";
  return (
    <Alert>
      {messageFor(problem)}
      {signInAgain ? (
        <>
          {" "}
          <Link href={`/login?next=${encodeURIComponent(HERE)}`}>Sign in again</Link>
        </>
      ) : null}
    </Alert>
  );
}

function passwordErrorOf(problem: Problem | null): string | undefined {
  return fieldError(problem, "password") ?? (problem?.code === "invalid_password" ? messageFor(problem) : undefined);
}

function codeErrorOf(problem: Problem | null): string | undefined {
  return fieldError(problem, "code") ?? (problem?.code === "invalid_mfa_code" ? messageFor(problem) : undefined);
}

/** A form named by its legend (role=form "…"), for the forms that share field labels on this page. */
/** The current password (for an account that has one) and a code: what turning two-factor off and getting new
 * recovery codes both ask for. */
function ProofFields({ hasPassword, email, problem }: { hasPassword: boolean; email: string; problem: Problem | null }) {
  return (
    <>
      {hasPassword ? <UsernameHint value={email} /> : null}
      {hasPassword ? (
        <Field label="Current password" name="password" type="password" autoComplete="current-password" required error={passwordErrorOf(problem)} />
      ) : null}
      <Field
        label="Authentication code"
        name="code"
        autoComplete="one-time-code"
        spellCheck={false}
        required
        hint="The 6-digit code of your app, or a recovery code."
        error={codeErrorOf(problem)}
      />
    </>
  );
}

function NamedForm({ title, onSubmit, children }: { title: string; onSubmit: (event: FormEvent<HTMLFormElement>) => void; children: ReactNode }) {
  const id = useId();
  return (
    <form aria-labelledby={id} onSubmit={onSubmit} noValidate>
      <fieldset>
        <legend id={id}>{title}</legend>
        {children}
      </fieldset>
    </form>
  );
}

function TwoFactor({ hasPassword, email, mfa, onChanged }: { hasPassword: boolean; email: string; mfa: Mfa; onChanged: () => Promise<void> }) {
  const [stage, setStage] = useState<"idle" | "password" | "scan">("idle");
  const [enrolment, setEnrolment] = useState<Enrolment | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [offProblem, setOffProblem] = useState<Problem | null>(null);
  const [codesProblem, setCodesProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const stepRef = useRef<HTMLDivElement>(null);

  // Where a step's content replaced the form the focus was in, move the focus to it (keyboard, screen readers).
  useEffect(() => {
    if (stage === "scan" || codes) stepRef.current?.focus();
  }, [stage, codes]);

  async function start(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const password = String(new FormData(event.currentTarget).get("password") ?? "");
    setBusy(true);
    const answer = await attempt(api.POST("/api/v1/users/me/mfa/totp", { body: hasPassword ? { password } : {} }));
    setBusy(false);
    if (answer.data) {
      setProblem(null);
      setEnrolment(answer.data);
      setStage("scan");
      return;
    }
    setProblem(answer.problem);
    if (answer.problem?.code === "mfa_already_enabled") await onChanged();
  }

  async function confirm(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const code = String(new FormData(event.currentTarget).get("code") ?? "").replace(/\s+/g, "");
    setBusy(true);
    const answer = await attempt(api.POST("/api/v1/users/me/mfa/totp/confirm", { body: { code } }));
    setBusy(false);
    if (answer.data) {
      setProblem(null);
      setEnrolment(null);
      setStage("idle");
      setCodes(answer.data.recovery_codes);
      setNews("Two-factor authentication is turned on, and your other sessions are signed out.");
      await onChanged();
      return;
    }
    setProblem(answer.problem);
    if (answer.problem?.code === "no_pending_enrolment") {
      setEnrolment(null);
      setStage("password");
    }
  }

  async function turnOff(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const code = String(form.get("code") ?? "").trim();
    const password = String(form.get("password") ?? "");
    setBusy(true);
    const answer = await attempt(api.DELETE("/api/v1/users/me/mfa/totp", { body: { code, ...(hasPassword ? { password } : {}) } }));
    setBusy(false);
    if (answer.ok || answer.problem?.code === "mfa_not_enabled") {
      setOffProblem(null);
      setCodesProblem(null);
      setStage("idle");
      setNews("Two-factor authentication is off.");
      await onChanged();
      return;
    }
    setOffProblem(answer.problem);
  }

  async function newCodes(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const code = String(form.get("code") ?? "").trim();
    const password = String(form.get("password") ?? "");
    setBusy(true);
    const answer = await attempt(
      api.POST("/api/v1/users/me/mfa/recovery-codes", { body: { code, ...(hasPassword ? { password } : {}) } }),
    );
    setBusy(false);
    if (answer.data) {
      setCodesProblem(null);
      setOffProblem(null);
      setCodes(answer.data.recovery_codes);
      setNews("Your new recovery codes are ready. The old ones no longer work.");
      await onChanged();
      return;
    }
    setCodesProblem(answer.problem);
    if (answer.problem?.code === "mfa_not_enabled") await onChanged();
  }

  function saved() {
    setCodes(null);
    setNews(null);
  }

  function cancel() {
    setStage("idle");
    setEnrolment(null);
    setProblem(null);
  }

  let body: ReactNode;
  if (codes) {
    body = (
      <div ref={stepRef} tabIndex={-1} className="step">
        <p>
          <strong>Save these recovery codes</strong> somewhere safe, such as a password manager. If you lose your phone,
          each one signs you in once instead of a code from your app. They are shown only now.
        </p>
        <ul data-testid="recovery-codes" className="codes" aria-label="Recovery codes">
          {codes.map((code) => (
            <li key={code}>{code}</li>
          ))}
        </ul>
        <div className="actions">
          <button type="button" onClick={saved}>
            I have saved these codes
          </button>
        </div>
      </div>
    );
  } else if (mfa.totp_enabled) {
    body = (
      <>
        <p>Two-factor authentication is on.</p>
        <p className="muted small">
          {mfa.enabled_at ? <>On since {formatDate(mfa.enabled_at)}. </> : null}
          {mfa.recovery_codes_left} recovery code{mfa.recovery_codes_left === 1 ? "" : "s"} left.
        </p>
        <NamedForm title="Turn off two-factor authentication" onSubmit={turnOff}>
          <ProblemAlert problem={offProblem} />
          <ProofFields hasPassword={hasPassword} email={email} problem={offProblem} />
          <div className="actions">
            <button type="submit" className="danger" disabled={busy}>
              Turn off
            </button>
          </div>
        </NamedForm>
        <NamedForm title="Get new recovery codes" onSubmit={newCodes}>
          <ProblemAlert problem={codesProblem} />
          <p className="muted small">The codes you have now stop working.</p>
          <ProofFields hasPassword={hasPassword} email={email} problem={codesProblem} />
          <div className="actions">
            <button type="submit" className="secondary" disabled={busy}>
              Get new codes
            </button>
          </div>
        </NamedForm>
      </>
    );
  } else if (stage === "scan" && enrolment) {
    body = (
      <div ref={stepRef} tabIndex={-1} className="step">
        <ol className="steps">
          <li>
            <p>Scan this QR code with your authenticator app (Google Authenticator, 1Password, Aegis…):</p>
            <div
              data-testid="totp-qr"
              className="qr"
              role="img"
              aria-label="QR code for your authenticator app"
              dangerouslySetInnerHTML={{ __html: enrolment.qr_svg }}
            />
            <p className="small">
              Or enter this key in the app: <code data-testid="totp-secret" className="secret">{enrolment.secret}</code>
            </p>
            <p className="small">
              On this phone? <a href={enrolment.otpauth_uri}>Open it in your authenticator app</a>.
            </p>
          </li>
          <li>
            <form onSubmit={confirm} noValidate>
              <ProblemAlert problem={problem} />
              <Field
                label="Code from your app"
                name="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                maxLength={10}
                required
                hint="The 6 digits your app shows for this account now."
                error={codeErrorOf(problem)}
              />
              <div className="actions">
                <button type="submit" disabled={busy}>
                  Turn on
                </button>
                <button type="button" className="secondary" onClick={cancel}>
                  Cancel
                </button>
              </div>
            </form>
          </li>
        </ol>
      </div>
    );
  } else if (stage === "password") {
    body = (
      <form onSubmit={start} noValidate aria-label="Confirm it is you">
        <ProblemAlert problem={problem} />
        {hasPassword ? <UsernameHint value={email} /> : null}
        {hasPassword ? (
          <Field
            label="Current password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            autoFocus
            error={passwordErrorOf(problem)}
          />
        ) : (
          <p className="muted small">Your account has no password: this works within 10 minutes of signing in.</p>
        )}
        <div className="actions">
          <button type="submit" disabled={busy} autoFocus={!hasPassword}>
            Continue
          </button>
          <button type="button" className="secondary" onClick={cancel}>
            Cancel
          </button>
        </div>
      </form>
    );
  } else {
    body = (
      <>
        <p>
          Not set up yet. With two-factor authentication, signing in takes a code from an authenticator app on your
          phone as well, so a stolen password alone does not get into your account.
        </p>
        <div className="actions">
          <button type="button" onClick={() => { setNews(null); setStage("password"); }}>
            Set up two-factor authentication
          </button>
        </div>
      </>
    );
  }

  return (
    <section className="card panel" aria-labelledby="mfa-heading">
      <h2 id="mfa-heading">Two-factor authentication</h2>
      <Alert kind="success">{news}</Alert>
      {body}
    </section>
  );
}

function Providers({ identities, providers, onChanged }: { identities: Identity[]; providers: string[]; onChanged: () => Promise<void> }) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const linked = new Set(identities.map((identity) => identity.provider));
  const linkable = providers.filter((name) => !linked.has(name));

  useEffect(() => {
    // Back from the provider after "Link …": /bff/oauth/callback sends the browser here with ?linked= or ?error=.
    // Read once, then taken out of the address, so that a reload does not announce it again.
    const query = new URLSearchParams(window.location.search);
    const returned = query.get("linked");
    const refused = query.get("error");
    if (returned) setNews(`Your ${providerLabel(returned)} account is linked: you can sign in with it.`);
    if (refused) {
      setProblem({ type: "about:blank", title: "Not linked", status: 400, code: refused, detail: messageForCode(refused), errors: null });
    }
    if (returned || refused) window.history.replaceState(null, "", window.location.pathname);
  }, []);

  async function unlink(identity: Identity) {
    setBusy(identity.id);
    setNews(null);
    const answer = await attempt(
      api.DELETE("/api/v1/users/me/identities/{identity_id}", { params: { path: { identity_id: identity.id } } }),
    );
    setBusy(null);
    if (answer.ok || answer.problem?.code === "identity_not_found") {
      setProblem(null);
      setNews(`${providerLabel(identity.provider)} is unlinked: it no longer signs you in.`);
      await onChanged();
    } else {
      setProblem(answer.problem);
    }
  }

  async function link(name: string) {
    setBusy(name);
    setNews(null);
    const answer = await bff(`/oauth/${encodeURIComponent(name)}/link`, "POST");
    if (answer.ok && typeof answer.data?.authorization_url === "string") {
      window.location.assign(answer.data.authorization_url);
      return;
    }
    if (answer.status === 401) {
      window.location.assign(`/login?expired=1&next=${encodeURIComponent(HERE)}`);
      return;
    }
    setBusy(null);
    setProblem(answer.data as Problem);
  }

  return (
    <section className="card panel" aria-labelledby="providers-heading">
      <h2 id="providers-heading">Sign-in providers</h2>
      <Alert kind="success">{news}</Alert>
      <ProblemAlert problem={problem} />
      {identities.length > 0 ? (
        <ul className="list" aria-label="Linked providers">
          {identities.map((identity) => (
            <li key={identity.id} data-testid="identity" data-provider={identity.provider}>
              <div>
                <strong>{providerLabel(identity.provider)}</strong>
                {identity.email ? <span className="muted"> · {identity.email}</span> : null}
                <p className="muted small">
                  Linked {formatDate(identity.created_at)}, last used {formatDate(identity.last_used_at)}
                </p>
              </div>
              <button type="button" className="secondary" disabled={busy !== null} onClick={() => void unlink(identity)}>
                Unlink
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No provider is linked to your account.</p>
      )}
      {linkable.length > 0 ? (
        <div className="actions" style={{ marginTop: "0.75rem" }}>
          {linkable.map((name) => (
            <button key={name} type="button" className="secondary" disabled={busy !== null} onClick={() => void link(name)}>
              Link {providerLabel(name)}
            </button>
          ))}
        </div>
      ) : null}
    </section>
  );
}

function saveFile(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = name;
  anchor.hidden = true;
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

function YourData({ hasPassword, email }: { hasPassword: boolean; email: string }) {
  const [asking, setAsking] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function download(password?: string) {
    setBusy(true);
    setNews(null);
    const answer =
      password === undefined
        ? await attempt(api.GET("/api/v1/users/me/export", { parseAs: "blob" }))
        : await attempt(api.POST("/api/v1/users/me/export", { body: { password }, parseAs: "blob" }));
    setBusy(false);
    if (answer.ok && answer.data) {
      const name = fileNameOf(answer.response?.headers.get("content-disposition") ?? null, "usermgmt-export.json");
      saveFile(answer.data, name);
      setProblem(null);
      setAsking(false);
      setNews(`Your data is downloaded (${name}).`);
      return;
    }
    if (answer.problem?.code === "recent_sign_in_required" && hasPassword) {
      setProblem(null);
      setAsking(true);
      return;
    }
    setProblem(answer.problem);
  }

  function withPassword(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    void download(String(new FormData(event.currentTarget).get("password") ?? ""));
  }

  return (
    <section className="card panel" aria-labelledby="data-heading">
      <h2 id="data-heading">Your data</h2>
      <p>Download everything we hold about your account (profile, sessions, security history) as a JSON file.</p>
      <Alert kind="success">{news}</Alert>
      {asking ? (
        <form onSubmit={withPassword} noValidate aria-label="Confirm it is you to download your data">
          <Alert kind="info">For your security, enter your password to download your data.</Alert>
          <ProblemAlert problem={problem} />
          <UsernameHint value={email} />
          <Field
            label="Current password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            autoFocus
            error={passwordErrorOf(problem)}
          />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Download my data
            </button>
            <button type="button" className="secondary" onClick={() => { setAsking(false); setProblem(null); }}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <>
          <ProblemAlert problem={problem} />
          <div className="actions">
            <button type="button" className="secondary" disabled={busy} onClick={() => void download()}>
              Download my data
            </button>
          </div>
        </>
      )}
      <p className="danger-link">
        <Link href="/delete">Delete account</Link>
      </p>
    </section>
  );
}

export default function SecurityPage() {
  const session = useRequireSignIn();
  const { user, problem: userProblem } = useCurrentUser(session.signedIn);
  const [mfa, setMfa] = useState<Mfa | null>(null);
  const [identities, setIdentities] = useState<Identity[] | null>(null);
  const [providers, setProviders] = useState<string[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);

  const loadMfa = useCallback(async () => {
    const answer = await attempt(api.GET("/api/v1/users/me/mfa"));
    if (answer.data) setMfa(answer.data);
    else setProblem(answer.problem);
  }, []);

  const loadIdentities = useCallback(async () => {
    const answer = await attempt(api.GET("/api/v1/users/me/identities"));
    if (answer.data) setIdentities(answer.data);
    else setProblem(answer.problem);
  }, []);

  useEffect(() => {
    if (!session.signedIn) return;
    void loadMfa();
    void loadIdentities();
    void attempt(api.GET("/api/v1/auth/oauth/providers")).then((answer) => setProviders(answer.data?.providers ?? []));
  }, [session.signedIn, loadMfa, loadIdentities]);

  const failed = problem ?? userProblem;
  if (!user || !mfa || !identities) {
    return (
      <>
        <h1>Security</h1>
        {failed ? <Alert>{messageFor(failed)}</Alert> : <p className="muted">Loading…</p>}
      </>
    );
  }
  return (
    <>
      <h1>Security</h1>
      {failed ? <Alert>{messageFor(failed)}</Alert> : null}
      <section className="card panel" aria-labelledby="password-heading">
        <h2 id="password-heading">Password</h2>
        {user.has_password ? (
          <p>
            <Link href="/password">Change password</Link>
          </p>
        ) : (
          <p>
            Your account has no password: you sign in with a provider. To set one, ask for a link at{" "}
            <Link href="/forgot-password">Reset your password</Link>.
          </p>
        )}
      </section>
      <TwoFactor hasPassword={user.has_password} email={user.email} mfa={mfa} onChanged={loadMfa} />
      <Providers identities={identities} providers={providers} onChanged={loadIdentities} />
      <YourData hasPassword={user.has_password} email={user.email} />
    </>
  );
}
