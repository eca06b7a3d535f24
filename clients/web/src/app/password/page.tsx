"use client";

import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { UsernameHint } from "@/components/UsernameHint";
import { attempt } from "@/components/request";
import { useRequireSignIn } from "@/components/SessionProvider";
import { useCurrentUser } from "@/components/useAccount";
import { api, fieldError, type Problem } from "@/lib/api";
import { messageFor } from "@/lib/messages";

export default function PasswordPage() {
  const session = useRequireSignIn();
  const { user, problem: loadProblem } = useCurrentUser(session.signedIn);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function change(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const formElement = event.currentTarget;
    const form = new FormData(formElement);
    setBusy(true);
    setDone(false);
    const answer = await attempt(
      api.POST("/api/v1/users/me/password", {
        body: {
          current_password: String(form.get("current_password") ?? ""),
          new_password: String(form.get("new_password") ?? ""),
        },
      }),
    );
    setBusy(false);
    if (answer.ok) {
      setProblem(null);
      setDone(true);
      formElement.reset();
    } else {
      setProblem(answer.problem);
    }
  }

  if (!user) {
    return (
      <>
        <h1>Change password</h1>
        {loadProblem ? <Alert>{messageFor(loadProblem)}</Alert> : <p className="muted">Loading…</p>}
      </>
    );
  }
  if (!user.has_password) {
    return (
      <>
        <h1>Change password</h1>
        <div className="card panel">
          <p>
            Your account has no password yet: you sign in with a provider. To set one, ask for a reset link at{" "}
            <Link href="/forgot-password">Reset your password</Link>; it goes to {user.email}.
          </p>
        </div>
        <p>
          <Link href="/security">Back to Security</Link>
        </p>
      </>
    );
  }
  const currentError =
    fieldError(problem, "current_password") ?? (problem?.code === "invalid_password" ? messageFor(problem) : undefined);
  const newError = fieldError(problem, "new_password") ?? (problem?.code === "weak_password" ? messageFor(problem) : undefined);
  return (
    <>
      <h1>Change password</h1>
      {done ? <Alert kind="success">Your password is changed. Your other sessions are signed out.</Alert> : null}
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      <div className="card panel">
        <form onSubmit={change} noValidate>
          <UsernameHint value={user.email} />
          <Field label="Current password" name="current_password" type="password" autoComplete="current-password" required error={currentError} />
          <Field
            label="New password"
            name="new_password"
            type="password"
            autoComplete="new-password"
            required
            hint="A long passphrase works best; common and breached passwords are refused. Your other sessions are signed out."
            error={newError}
          />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Change password
            </button>
            <Link href="/security">Cancel</Link>
          </div>
        </form>
      </div>
    </>
  );
}
