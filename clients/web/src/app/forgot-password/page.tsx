"use client";

import Link from "next/link";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { attempt } from "@/components/request";
import { api, fieldError, type Problem } from "@/lib/api";
import { messageFor } from "@/lib/messages";

export default function ForgotPasswordPage() {
  const [problem, setProblem] = useState<Problem | null>(null);
  const [sent, setSent] = useState(false);
  const [busy, setBusy] = useState(false);

  async function send(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email") ?? "").trim();
    setBusy(true);
    const answer = await attempt(api.POST("/api/v1/auth/password/forgot", { body: { email } }));
    setBusy(false);
    if (answer.ok) {
      setProblem(null);
      setSent(true);
    } else {
      setSent(false);
      setProblem(answer.problem);
    }
  }

  const emailError = fieldError(problem, "email") ?? (problem?.code === "invalid_email" ? messageFor(problem) : undefined);
  return (
    <>
      <h1>Reset your password</h1>
      {sent ? <Alert kind="success">If an account uses this address, a reset link is on its way.</Alert> : null}
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      <div className="card panel">
        <p className="muted">
          Enter the email address of your account. We send it a link to choose a new password; an account made with
          Google or another provider can set its first password this way too.
        </p>
        <form onSubmit={send} noValidate>
          <Field label="Email" name="email" type="email" autoComplete="email" required error={emailError} />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Send reset link
            </button>
          </div>
        </form>
      </div>
      <p>
        Remembered it? <Link href="/login">Sign in</Link>
      </p>
    </>
  );
}
