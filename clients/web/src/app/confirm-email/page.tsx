"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { Alert } from "@/components/Alert";
import { useOneShot } from "@/components/request";
import { useSession } from "@/components/SessionProvider";
import { api } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

function ConfirmEmail() {
  const token = useSearchParams().get("token") ?? "";
  const { session } = useSession();
  const { problem, done, busy, submit: confirm } = useOneShot(() => api.POST("/api/v1/auth/email/confirm", { body: { token } }));

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
