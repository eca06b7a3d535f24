"use client";

import { useSearchParams } from "next/navigation";
import { Suspense, useCallback, useEffect, useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { useRequireSignIn } from "@/components/SessionProvider";
import { api, asProblem, fieldError, type Problem, type User } from "@/lib/api";
import { messageFor } from "@/lib/messages";

function Profile() {
  const session = useRequireSignIn();
  const query = useSearchParams();
  const [user, setUser] = useState<User | null>(null);
  const [editing, setEditing] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [emailProblem, setEmailProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(query.get("welcome") ? "Welcome! Your account is ready." : null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    const { data, error, response } = await api.GET("/api/v1/users/me");
    if (data) setUser(data);
    else setProblem(asProblem(error, response.status));
  }, []);

  useEffect(() => {
    if (session.signedIn) void load();
  }, [session.signedIn, load]);

  async function save(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const username = String(form.get("username") ?? "").trim();
    const fullName = String(form.get("full_name") ?? "").trim();
    setBusy(true);
    const { data, error, response } = await api.PATCH("/api/v1/users/me", {
      body: { username: username || null, full_name: fullName || null },
    });
    setBusy(false);
    if (data) {
      setUser(data);
      setEditing(false);
      setProblem(null);
      setNews("Your profile is saved.");
    } else {
      setProblem(asProblem(error, response.status));
    }
  }

  async function changeEmail(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const password = String(form.get("password") ?? "");
    setBusy(true);
    const { error, response } = await api.POST("/api/v1/users/me/email", {
      body: { new_email: String(form.get("new_email") ?? ""), ...(user?.has_password ? { password } : {}) },
    });
    setBusy(false);
    if (response.ok) {
      setEmailProblem(null);
      setNews("Check the new mailbox: the change happens when you follow the link we sent there.");
      event.currentTarget?.reset();
      await load();
    } else {
      setEmailProblem(asProblem(error, response.status));
    }
  }

  async function resendVerification() {
    const { error, response } = await api.POST("/api/v1/users/me/email/verification");
    if (response.ok) setNews("A new verification link is on its way to your address.");
    else setProblem(asProblem(error, response.status));
  }

  if (!user) {
    return (
      <>
        <h1>Profile</h1>
        {problem ? <Alert>{messageFor(problem)}</Alert> : <p className="muted">Loading…</p>}
      </>
    );
  }
  return (
    <>
      <h1>Profile</h1>
      <Alert kind="success">{news}</Alert>
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      <section className="card" aria-labelledby="account-heading">
        <h2 id="account-heading">Your account</h2>
        {editing ? (
          <form onSubmit={save} noValidate>
            <Field
              label="Username"
              name="username"
              defaultValue={user.username ?? ""}
              autoComplete="username"
              error={fieldError(problem, "username") ?? (problem?.code === "username_taken" ? messageFor(problem) : undefined)}
            />
            <Field label="Full name" name="full_name" defaultValue={user.full_name ?? ""} autoComplete="name" error={fieldError(problem, "full_name")} />
            <div className="actions">
              <button type="submit" disabled={busy}>
                Save
              </button>
              <button type="button" className="secondary" onClick={() => { setEditing(false); setProblem(null); }}>
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <>
            <dl className="facts">
              <dt>Email</dt>
              <dd data-testid="profile-email">
                {user.email} {user.email_verified ? <span className="badge">verified</span> : <span className="badge">not verified</span>}
              </dd>
              <dt>Username</dt>
              <dd data-testid="profile-username">{user.username ?? "—"}</dd>
              <dt>Full name</dt>
              <dd data-testid="profile-full-name">{user.full_name ?? "—"}</dd>
              <dt>Member since</dt>
              <dd>{new Date(user.created_at).toLocaleDateString()}</dd>
            </dl>
            <div className="actions" style={{ marginTop: "1rem" }}>
              <button type="button" onClick={() => setEditing(true)}>
                Edit profile
              </button>
              {!user.email_verified ? (
                <button type="button" className="secondary" onClick={resendVerification}>
                  Send a new verification link
                </button>
              ) : null}
            </div>
          </>
        )}
      </section>
      <section className="card" aria-labelledby="email-heading">
        <h2 id="email-heading">Change email address</h2>
        {user.pending_email ? (
          <p>
            Waiting for confirmation from <strong>{user.pending_email}</strong>.
          </p>
        ) : null}
        {emailProblem ? <Alert>{messageFor(emailProblem)}</Alert> : null}
        <form onSubmit={changeEmail} noValidate>
          <Field label="New email address" name="new_email" type="email" autoComplete="email" required error={fieldError(emailProblem, "new_email")} />
          {user.has_password ? (
            <Field label="Current password" name="password" type="password" autoComplete="current-password" required error={fieldError(emailProblem, "password")} />
          ) : null}
          <div className="actions">
            <button type="submit" disabled={busy}>
              Send confirmation link
            </button>
          </div>
        </form>
      </section>
    </>
  );
}

export default function ProfilePage() {
  return (
    <Suspense>
      <Profile />
    </Suspense>
  );
}
