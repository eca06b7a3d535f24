"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { useSession } from "@/components/SessionProvider";
import { api, asProblem, bff, fieldError, type Problem } from "@/lib/api";
import { messageFor } from "@/lib/messages";

export default function RegisterPage() {
  const router = useRouter();
  const { reload } = useSession();
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function register(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email") ?? "");
    const password = String(form.get("password") ?? "");
    const username = String(form.get("username") ?? "").trim();
    const fullName = String(form.get("full_name") ?? "").trim();
    setBusy(true);
    const { error, response } = await api.POST("/api/v1/auth/register", {
      body: { email, password, ...(username ? { username } : {}), ...(fullName ? { full_name: fullName } : {}) },
    });
    if (error || !response.ok) {
      setProblem(asProblem(error, response.status));
      setBusy(false);
      return;
    }
    const signedIn = await bff("/session", "POST", { login: email, password });
    await reload();
    router.push(signedIn.ok ? "/profile?welcome=1" : "/login");
  }

  const emailError = fieldError(problem, "email") ?? (problem?.code === "email_taken" ? messageFor(problem) : undefined);
  const usernameError = fieldError(problem, "username") ?? (problem?.code === "username_taken" ? messageFor(problem) : undefined);
  return (
    <>
      <h1>Create an account</h1>
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      <div className="card">
        <form onSubmit={register} noValidate>
          <Field label="Email" name="email" type="email" autoComplete="email" required error={emailError} />
          <Field
            label="Password"
            name="password"
            type="password"
            autoComplete="new-password"
            required
            hint="A long passphrase works best; common and breached passwords are refused."
            error={fieldError(problem, "password")}
          />
          <Field label="Username (optional)" name="username" autoComplete="username" error={usernameError} />
          <Field label="Full name (optional)" name="full_name" autoComplete="name" error={fieldError(problem, "full_name")} />
          <div className="actions">
            <button type="submit" disabled={busy}>
              Create account
            </button>
          </div>
        </form>
      </div>
      <p>
        Have an account? <Link href="/login">Sign in</Link>
      </p>
    </>
  );
}
