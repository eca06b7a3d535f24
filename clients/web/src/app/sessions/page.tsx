"use client";

import { useRouter } from "next/navigation";
import { useCallback, useEffect, useState } from "react";
import { Alert } from "@/components/Alert";
import { deviceName, formatDateTime, providerLabel } from "@/components/format";
import { attempt } from "@/components/request";
import { useSession } from "@/components/SessionProvider";
import { useSignedInPage } from "@/components/useAccount";
import { api, bff, type Problem } from "@/lib/api";
import type { components } from "@/lib/api-schema";
import { messageFor } from "@/lib/messages";

type Session = components["schemas"]["SessionOut"];

function methodLabel(session: Session): string {
  const method = providerLabel(session.sign_in_method);
  return session.amr.includes("otp") ? `${method} and two-factor code` : method;
}

export default function SessionsPage() {
  const router = useRouter();
  const { reload: reloadSession } = useSession();
  const [leaving, setLeaving] = useState(false);
  const session = useSignedInPage(leaving);
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const load = useCallback(async () => {
    const answer = await attempt(api.GET("/api/v1/users/me/sessions"));
    // This device first, then the others, most recently used first (the API's order).
    if (answer.data) setSessions([...answer.data].sort((a, b) => Number(b.current) - Number(a.current)));
    else setProblem(answer.problem);
  }, []);

  useEffect(() => {
    if (session.signedIn) void load();
  }, [session.signedIn, load]);

  async function signOutThisBrowser() {
    setLeaving(true);
    setBusy("current");
    await bff("/session", "DELETE");
    await reloadSession();
    router.push("/login?signed_out=1");
  }

  async function signOut(target: Session) {
    if (target.current) {
      await signOutThisBrowser();
      return;
    }
    setBusy(target.id);
    setNews(null);
    const answer = await attempt(api.DELETE("/api/v1/users/me/sessions/{session_id}", { params: { path: { session_id: target.id } } }));
    setBusy(null);
    if (answer.ok || answer.problem?.code === "session_not_found") {
      setProblem(null);
      setNews(`The session of ${deviceName(target.user_agent) ?? "that device"} is signed out.`);
      setSessions((list) => list?.filter((item) => item.id !== target.id) ?? null);
    } else {
      setProblem(answer.problem);
    }
  }

  async function signOutOthers() {
    setBusy("others");
    setNews(null);
    const others = (sessions ?? []).filter((item) => !item.current);
    const answers = await Promise.all(
      others.map((item) => attempt(api.DELETE("/api/v1/users/me/sessions/{session_id}", { params: { path: { session_id: item.id } } }))),
    );
    const failed = answers.find((answer) => !answer.ok && answer.problem?.code !== "session_not_found");
    setBusy(null);
    await load();
    if (failed) {
      setProblem(failed.problem);
    } else {
      setProblem(null);
      setNews("Every other session is signed out.");
    }
  }

  return (
    <>
      <h1>Active sessions</h1>
      <p className="muted">
        Every browser and app signed in to your account. Sign out any you do not recognise, then change your password.
      </p>
      <Alert kind="success">{news}</Alert>
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      {sessions === null ? (
        problem ? null : <p className="muted">Loading…</p>
      ) : (
        <>
          <section className="card panel" aria-label="Sessions">
            <ul className="list sessions">
              {sessions.map((item) => {
                const device = deviceName(item.user_agent);
                return (
                  <li key={item.id} data-testid="session" data-current={item.current ? "true" : undefined}>
                    <div className="session-info">
                      <p className="session-device">
                        <strong>{device ?? item.user_agent ?? "Unknown device"}</strong>{" "}
                        {item.current ? <span className="badge badge-ok">This device</span> : null}
                      </p>
                      {device && item.user_agent ? <p className="muted small ua">{item.user_agent}</p> : null}
                      <dl className="facts small">
                        <dt>IP address</dt>
                        <dd>{item.ip ?? "unknown"}</dd>
                        <dt>Signed in with</dt>
                        <dd>{methodLabel(item)}</dd>
                        <dt>Last used</dt>
                        <dd>
                          <time dateTime={item.last_used_at}>{formatDateTime(item.last_used_at)}</time>
                        </dd>
                      </dl>
                    </div>
                    <button
                      type="button"
                      className="secondary"
                      aria-label="Sign out this device"
                      disabled={busy !== null}
                      onClick={() => void signOut(item)}
                    >
                      Sign out
                    </button>
                  </li>
                );
              })}
            </ul>
          </section>
          <div className="actions">
            <button type="button" className="danger" disabled={busy !== null} onClick={() => void signOutOthers()}>
              Sign out everywhere else
            </button>
          </div>
        </>
      )}
    </>
  );
}
