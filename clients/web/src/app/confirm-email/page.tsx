"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { attempt } from "@/components/request";
import { useSession } from "@/components/SessionProvider";
import { api, type Problem } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

function ConfirmEmail() {
  const token = useSearchParams().get("token") ?? "";
  const { session } = useSession();
  const [problem, setProblem] = useState<Problem | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function confirm(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setBusy(true);
    const answer = await attempt(api.POST("/api/v1/auth/email/confirm", { body: { token } }));
    setBusy(false);
    setDone(answer.ok);
    setProblem(answer.problem);
  }

  return (
    <>
      <h1>Confirm your new email address</h1>
      {done ? (
        <>
          <Alert kind="success">Your email address is changed.</Alert>
          <p>{session.signedIn ? <Link href="/profile">Go to your profile</Link> : <Link href="/login">Sign in</Link>}</p>
        </>
      ) : !token ? (
        <Alert>{messageForCode("invalid_email_token")}</Alert>
      ) : (
        <>
          {problem ? <Alert>{messageFor(problem)}</Alert> : null}
          <div className="card panel">
            <p>Your account&apos;s address changes to this mailbox&apos;s, and the old address is told.</p>
            <form onSubmit={confirm} noValidate>
              <div className="actions">
                <button type="submit" disabled={busy}>
                  Confirm new address
                </button>
              </div>
            </form>
          </div>
        </>
      )}
    </>
  );
}

export default function ConfirmEmailPage() {
  return (
    <Suspense>
      <ConfirmEmail />
    </Suspense>
  );
}
