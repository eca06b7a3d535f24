"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useEffect, useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { useSession } from "@/components/SessionProvider";
import { api, bff, fieldError, type Problem } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

const PROVIDER_NAMES: Record<string, string> = { google: "Google", facebook: "Facebook" };

function providerLabel(name: string): string {
  return PROVIDER_NAMES[name] ?? name.charAt(0).toUpperCase() + name.slice(1);
}

/** Only this site's own paths: ?next= must not send anyone elsewhere. */
function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/bff") ? next : "/profile";
}

function LoginForm() {
  const router = useRouter();
  const query = useSearchParams();
  const { reload } = useSession();
  const [step, setStep] = useState<"password" | "mfa">(query.get("step") === "mfa" ? "mfa" : "password");
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);
  const [providers, setProviders] = useState<string[]>([]);
  const returned = query.get("error");

  useEffect(() => {
    void api.GET("/api/v1/auth/oauth/providers").then(({ data }) => setProviders(data?.providers ?? []));
  }, []);

  async function finish(answer: { ok: boolean; data: any }) {
    if (answer.ok) {
      await reload();
      router.push(safeNext(query.get("next")));
      return;
    }
    if (answer.data.code === "mfa_required") {
      setProblem(null);
      setStep("mfa");
      return;
    }
    if (answer.data.code === "invalid_mfa_token") setStep("password");
    setProblem(answer.data as Problem);
  }

  async function signIn(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    await finish(await bff("/session", "POST", { login: form.get("login"), password: form.get("password") }));
    setBusy(false);
  }

  async function secondStep(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    await finish(await bff("/session/mfa", "POST", { code: String(form.get("code") ?? "").trim() }));
    setBusy(false);
  }

  return (
    <>
      <h1>{step === "mfa" ? "Two-factor authentication" : "Sign in"}</h1>
      {query.get("signed_out") ? <Alert kind="info">You are signed out.</Alert> : null}
      {query.get("expired") ? <Alert kind="info">Your session has ended. Sign in again.</Alert> : null}
      {query.get("reset") ? <Alert kind="success">Your password is set. Sign in with it.</Alert> : null}
      {returned && !problem ? <Alert>{messageForCode(returned)}</Alert> : null}
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      <div className="card">
        {step === "password" ? (
          <form onSubmit={signIn} noValidate>
            <Field label="Email or username" name="login" autoComplete="username" required error={fieldError(problem, "login")} />
            <Field label="Password" name="password" type="password" autoComplete="current-password" required error={fieldError(problem, "password")} />
            <div className="actions">
              <button type="submit" disabled={busy}>
                Sign in
              </button>
              <Link href="/forgot-password">Forgot your password?</Link>
            </div>
          </form>
        ) : (
          <form onSubmit={secondStep} noValidate>
            <p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>
            <Field label="Authentication code" name="code" inputMode="text" autoComplete="one-time-code" required autoFocus error={fieldError(problem, "code")} />
            <div className="actions">
              <button type="submit" disabled={busy}>
                Verify
              </button>
              <button type="button" className="link" onClick={() => { setStep("password"); setProblem(null); }}>
                Start again
              </button>
            </div>
          </form>
        )}
        {step === "password" && providers.length > 0 ? (
          <>
            <p className="divider">or</p>
            <div className="actions">
              {providers.map((name) => (
                <a key={name} className="button" href={`/bff/oauth/${encodeURIComponent(name)}/start`}>
                  Continue with {providerLabel(name)}
                </a>
              ))}
            </div>
          </>
        ) : null}
      </div>
      <p>
        New here? <Link href="/register">Create an account</Link>
      </p>
    </>
  );
}

export default function LoginPage() {
  return (
    <Suspense>
      <LoginForm />
    </Suspense>
  );
}
