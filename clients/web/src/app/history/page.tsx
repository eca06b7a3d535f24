"use client";

import { useCallback, useEffect, useState } from "react";
import { Alert } from "@/components/Alert";
import { deviceName, formatDateTime, providerLabel } from "@/components/format";
import { attempt } from "@/components/request";
import { useRequireSignIn } from "@/components/SessionProvider";
import { api, type Problem } from "@/lib/api";
import type { components } from "@/lib/api-schema";
import { messageFor } from "@/lib/messages";

type SecurityEvent = components["schemas"]["EventOut"];

const PAGE_SIZE = 20;

const LABELS: Record<string, string> = {
  registered: "Account created",
  user_registered: "Account created",
  login_succeeded: "Signed in",
  login_failed: "Failed sign-in",
  token_refreshed: "Session renewed",
  refresh_reuse_detected: "Stolen session suspected: it was ended",
  logged_out: "Signed out",
  session_revoked: "Session signed out",
  sessions_revoked: "Signed out everywhere",
  password_changed: "Password changed",
  password_confirmation_failed: "Wrong password entered",
  password_reset_requested: "Password reset requested",
  password_reset: "Password reset",
  profile_updated: "Profile updated",
  email_verification_sent: "Verification link sent",
  email_verified: "Email address verified",
  email_change_requested: "Email change requested",
  email_changed: "Email address changed",
  mfa_enabled: "Two-factor authentication turned on",
  mfa_disabled: "Two-factor authentication turned off",
  recovery_codes_regenerated: "New recovery codes made",
  recovery_code_used: "Recovery code used",
  rate_limited: "Too many attempts: blocked for a while",
  account_disabled: "Account disabled",
  account_enabled: "Account enabled",
  account_deleted: "Account deleted",
  account_deletion_scheduled: "Account deletion scheduled",
  account_restored: "Account restored",
  roles_changed: "Roles changed",
  role_created: "Role created",
  role_updated: "Role changed",
  role_deleted: "Role deleted",
  data_exported: "Data downloaded",
  identity_linked: "Sign-in provider linked",
  identity_unlinked: "Sign-in provider unlinked",
};

/** A few details worth a word: who did it, with what it was done. */
function note(event: SecurityEvent): string | null {
  const details = event.details ?? {};
  const parts: string[] = [];
  if (typeof details.provider === "string") parts.push(providerLabel(details.provider));
  if (Array.isArray(details.amr)) {
    if (details.amr.includes("fed")) parts.push("through a provider");
    if (details.amr.includes("otp")) parts.push("with a two-factor code");
  }
  if (typeof details.revoked_sessions === "number" && details.revoked_sessions > 0) {
    parts.push(`${details.revoked_sessions} other session${details.revoked_sessions === 1 ? "" : "s"} signed out`);
  }
  if (details.by === "administrator") parts.push("by an administrator");
  return parts.length ? parts.join(", ") : null;
}

export default function HistoryPage() {
  const session = useRequireSignIn();
  const [events, setEvents] = useState<SecurityEvent[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  const fetchPage = useCallback(async (after: string | null) => {
    setBusy(true);
    const answer = await attempt(
      api.GET("/api/v1/users/me/events", { params: { query: { limit: PAGE_SIZE, ...(after ? { cursor: after } : {}) } } }),
    );
    setBusy(false);
    if (!answer.data) {
      setProblem(answer.problem);
      return;
    }
    const page = answer.data;
    setProblem(null);
    setEvents((shown) => {
      const before = after ? (shown ?? []) : [];
      const seen = new Set(before.map((item) => item.id));
      return [...before, ...page.items.filter((item) => !seen.has(item.id))];
    });
    setCursor(page.next_cursor);
  }, []);

  useEffect(() => {
    if (session.signedIn) void fetchPage(null);
  }, [session.signedIn, fetchPage]);

  return (
    <>
      <h1>Security history</h1>
      <p className="muted">Sign-ins and changes to your account, newest first. Something you do not recognise? Change your password and sign out your other sessions.</p>
      {problem ? <Alert>{messageFor(problem)}</Alert> : null}
      {events === null ? (
        problem ? null : <p className="muted">Loading…</p>
      ) : events.length === 0 ? (
        <p className="muted">Nothing yet.</p>
      ) : (
        <section className="card panel" aria-label="Events">
          <ul className="list events">
            {events.map((event) => {
              const extra = note(event);
              const device = deviceName(event.user_agent);
              return (
                <li key={event.id} data-testid="event" data-type={event.type}>
                  <div>
                    <p className="event-label">
                      <strong>{LABELS[event.type] ?? event.type}</strong>
                      {extra ? <span className="muted"> · {extra}</span> : null}
                    </p>
                    <p className="muted small">
                      <time dateTime={event.at}>{formatDateTime(event.at)}</time>
                      {event.ip ? <> · IP {event.ip}</> : null}
                      {device ? <> · {device}</> : null}
                    </p>
                  </div>
                </li>
              );
            })}
          </ul>
        </section>
      )}
      {cursor ? (
        <div className="actions">
          <button type="button" className="secondary" disabled={busy} onClick={() => void fetchPage(cursor)}>
            Show older
          </button>
        </div>
      ) : null}
    </>
  );
}
