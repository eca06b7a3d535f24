"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { attempt } from "@/components/request";
import { api, fieldError, type Problem } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

function ResetPassword() {
  const router = useRouter();
  const token = useSearchParams().get("token") ?? "";
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function reset(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    const answer = await attempt(
      api.POST("/api/v1/auth/password/reset", { body: { token, new_password: String(form.get("new_password") ?? "") } }),
    );
    if (answer.ok) {
      router.push("/login?reset=1");
      return;
    }
    setBusy(false);
    setProblem(answer.problem);
  }

  const badLink = !token || problem?.code === "invalid_email_token";
  const passwordError = fieldError(problem, "new_password") ?? (problem?.code === "weak_password" ? messageFor(problem) : undefined);
  return (
    <>
      <h1>Choose a new password</h1>
      {badLink ? (
        <Alert>
          {messageForCode("invalid_email_token")} <Link href="/forgot-password">Ask for a new reset link</Link>.
        </Alert>
      ) : problem ? (
        <Alert>{messageFor(problem)}</Alert>
      ) : null}
      {token ? (
        <div className="card panel">
          <p className="muted">Your other sessions end when the new password is set; then sign in with it.</p>
          <form onSubmit={reset} noValidate>
            <Field
              label="New password"
              name="new_password"
              type="password"
              autoComplete="new-password"
              required
              autoFocus
              hint="A long passphrase works best; common and breached passwords are refused."
              error={passwordError}
            />
            <div className="actions">
              <button type="submit" disabled={busy}>
                Set password
              </button>
            </div>
          </form>
        </div>
      ) : null}
    </>
  );
}

export default function ResetPasswordPage() {
  return (
    <Suspense>
      <ResetPassword />
    </Suspense>
  );
}
