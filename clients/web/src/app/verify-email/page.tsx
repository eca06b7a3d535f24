"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useEffect, useRef, useState } from "react";
import { Alert } from "@/components/Alert";
import { attempt } from "@/components/request";
import { useSession } from "@/components/SessionProvider";
import { api, type Problem } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

function VerifyEmail() {
  const token = useSearchParams().get("token") ?? "";
  const { session } = useSession();
  const [state, setState] = useState<"working" | "done" | "failed">(token ? "working" : "failed");
  const [problem, setProblem] = useState<Problem | null>(null);
  const sent = useRef<string | null>(null);

  useEffect(() => {
    // A link works once: send it once, even when React runs effects twice (development) or the page re-renders.
    if (!token || sent.current === token) return;
    sent.current = token;
    setState("working");
    void attempt(api.POST("/api/v1/auth/email/verify", { body: { token } })).then((answer) => {
      setState(answer.ok ? "done" : "failed");
      setProblem(answer.problem);
    });
  }, [token]);

  const next = session.signedIn ? (
    <Link href="/profile">Go to your profile</Link>
  ) : session.loaded ? (
    <Link href="/login">Sign in</Link>
  ) : null;
  return (
    <>
      <h1>Verify your email</h1>
      {state === "working" ? (
        <p className="muted" aria-live="polite">
          Verifying your address…
        </p>
      ) : state === "done" ? (
        <>
          <Alert kind="success">Your email address is verified.</Alert>
          <p>{next}</p>
        </>
      ) : (
        <>
          <Alert>{problem ? messageFor(problem) : messageForCode("invalid_email_token")}</Alert>
          <p>
            {session.signedIn ? (
              <>
                Ask for a new link from <Link href="/profile">your profile</Link>.
              </>
            ) : (
              <>
                <Link href="/login">Sign in</Link> to ask for a new link from your profile.
              </>
            )}
          </p>
        </>
      )}
    </>
  );
}

export default function VerifyEmailPage() {
  return (
    <Suspense>
      <VerifyEmail />
    </Suspense>
  );
}
