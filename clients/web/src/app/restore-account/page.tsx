"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { Alert } from "@/components/Alert";
import { useOneShot } from "@/components/request";
import { api } from "@/lib/api";
import { messageFor, messageForCode } from "@/lib/messages";

function RestoreAccount() {
  const token = useSearchParams().get("token") ?? "";
  const { problem, done, busy, submit: restore } = useOneShot(() => api.POST("/api/v1/auth/account/restore", { body: { token } }));

  return (
    <>
      <h1>Restore your account</h1>
      {done ? (
        <>
          <Alert kind="success">Your account is restored. Sign in again.</Alert>
          <p>
            <Link href="/login">Sign in</Link>
          </p>
        </>
      ) : !token ? (
        <Alert>{messageForCode("invalid_email_token")}</Alert>
      ) : (
        <>
          {problem ? <Alert>{messageFor(problem)}</Alert> : null}
          <div className="card panel">
            <p>Your account is waiting to be erased. Restore it to keep it: its deletion is called off, and you sign in again as before.</p>
            <form onSubmit={restore} noValidate>
              <div className="actions">
                <button type="submit" disabled={busy}>
                  Restore my account
                </button>
              </div>
            </form>
          </div>
        </>
      )}
    </>
  );
}

export default function RestoreAccountPage() {
  return (
    <Suspense>
      <RestoreAccount />
    </Suspense>
  );
}
