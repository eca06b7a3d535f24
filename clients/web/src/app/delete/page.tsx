"use client";

import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { UsernameHint } from "@/components/UsernameHint";
import { formatDate, formatDateTime } from "@/components/format";
import { attempt } from "@/components/request";
import { useSession } from "@/components/SessionProvider";
import { useCurrentUser, useSignedInPage } from "@/components/useAccount";
import { api, fieldError, type Problem } from "@/lib/api";
import type { components } from "@/lib/api-schema";
import { messageFor } from "@/lib/messages";

type Receipt = components["schemas"]["DeletionReceiptOut"];
type Outcome = { receipt: Receipt } | { erasureAt: string };

const ERASED: Record<string, string> = {
  user: "Your account and profile",
  sessions: "Sessions",
  retired_refresh_tokens: "Old session tokens",
  security_events: "Security history events",
  email_tokens: "Email links",
  email_outbox: "Queued emails",
  known_devices: "Known devices",
  totp_credentials: "Authenticator apps",
  recovery_codes: "Recovery codes",
  mfa_challenges: "Open two-factor sign-ins",
  user_roles: "Roles",
  identities: "Linked sign-in providers",
  oauth_authorizations: "Open provider sign-ins",
  login_codes: "Provider sign-in codes",
};

export default function DeleteAccountPage() {
  const { reload: reloadSession } = useSession();
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const session = useSignedInPage(outcome !== null);
  const { user, problem: loadProblem } = useCurrentUser(session.signedIn && outcome === null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [understood, setUnderstood] = useState(false);
  const [armed, setArmed] = useState(false);
  const [passwordMissing, setPasswordMissing] = useState(false);
  const [busy, setBusy] = useState(false);

  async function erase(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (!user) return;
    const password = String(new FormData(event.currentTarget).get("password") ?? "");
    if (user.has_password && !password) {
      setPasswordMissing(true);
      return;
    }
    setPasswordMissing(false);
    // Confirmed by the checkbox, or by pressing the button a second time.
    if (!understood && !armed) {
      setProblem(null);
      setArmed(true);
      return;
    }
    setBusy(true);
    const answer = await attempt(api.DELETE("/api/v1/users/me", { body: user.has_password ? { password } : null }));
    setBusy(false);
    if (answer.ok && answer.data) {
      setProblem(null);
      setOutcome("erasure_at" in answer.data ? { erasureAt: answer.data.erasure_at } : { receipt: answer.data });
      await reloadSession(); // the BFF dropped the cookies: the menu shows the signed-out links
      return;
    }
    setArmed(false);
    setProblem(answer.problem);
  }

  if (outcome) {
    return (
      <>
        <h1>Delete account</h1>
        {"receipt" in outcome ? (
          <section className="card panel" aria-labelledby="deleted-heading">
            <h2 id="deleted-heading">Your account is deleted</h2>
            <p>
              Erased on <time dateTime={outcome.receipt.deleted_at}>{formatDateTime(outcome.receipt.deleted_at)}</time>. This
              is what we held about you, and no longer do:
            </p>
            <ul className="receipt" data-testid="receipt">
              {outcome.receipt.erased.map((item) => (
                <li key={item.what} data-what={item.what}>
                  <span className="receipt-what">
                    {ERASED[item.what] ?? item.what.replace(/_/g, " ")} <code className="muted small">{item.what}</code>
                  </span>{" "}
                  <span className="count">{item.count}</span>
                </li>
              ))}
            </ul>
          </section>
        ) : (
          <section className="card panel" aria-labelledby="scheduled-heading">
            <h2 id="scheduled-heading">Your account is scheduled for deletion</h2>
            <Alert kind="info">
              Your account will be erased on <time dateTime={outcome.erasureAt}>{formatDate(outcome.erasureAt)}</time>.
            </Alert>
            <p>
              It is disabled and signed out now. Changed your mind? The email we sent you has a restore link that works
              until then.
            </p>
          </section>
        )}
        <p>
          <Link href="/register">Create a new account</Link>
        </p>
      </>
    );
  }

  if (!user) {
    return (
      <>
        <h1>Delete account</h1>
        {loadProblem ? <Alert>{messageFor(loadProblem)}</Alert> : <p className="muted">Loading…</p>}
      </>
    );
  }

  const passwordError =
    fieldError(problem, "password") ??
    (problem?.code === "invalid_password" ? messageFor(problem) : passwordMissing ? "Enter your current password." : undefined);
  return (
    <>
      <h1>Delete account</h1>
      {problem ? (
        <Alert>
          {messageFor(problem)}
          {problem.code === "reauthentication_required" ? (
            <>
              {" "}
              <Link href="/login?next=/delete">Sign in again</Link>
            </>
          ) : null}
        </Alert>
      ) : null}
      {armed && !understood ? (
        <Alert kind="info">Are you sure? Press &ldquo;Delete my account&rdquo; again to delete it for good.</Alert>
      ) : null}
      <div className="card panel danger-zone">
        <p>
          This erases your account <strong>{user.email}</strong>: your profile, sessions, security history, two-factor
          settings and linked providers. It cannot be undone. Want a copy first?{" "}
          <Link href="/security">Download your data</Link>.
        </p>
        <form onSubmit={erase} noValidate>
          {user.has_password ? <UsernameHint value={user.email} /> : null}
          {user.has_password ? (
            <Field
              label="Current password"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              error={passwordError}
            />
          ) : (
            <p className="muted">Your account has no password: this works within 10 minutes of signing in.</p>
          )}
          <label className="check">
            <input type="checkbox" name="understood" checked={understood} onChange={(event) => setUnderstood(event.target.checked)} />
            I understand this cannot be undone
          </label>
          <div className="actions">
            <button type="submit" className="danger" disabled={busy}>
              Delete my account
            </button>
            <Link href="/profile">Cancel</Link>
          </div>
        </form>
      </div>
    </>
  );
}
