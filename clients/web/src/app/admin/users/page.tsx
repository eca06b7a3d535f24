"use client";

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Alert } from "@/components/Alert";
import { Field } from "@/components/Field";
import { formatDate } from "@/components/format";
import { attempt } from "@/components/request";
import { useRequireSignIn } from "@/components/SessionProvider";
import { api, type Problem } from "@/lib/api";
import type { components } from "@/lib/api-schema";
import { messageFor } from "@/lib/messages";

type AdminUser = components["schemas"]["AdminUserOut"];

const PAGE_SIZE = 20;

function permissionOf(problem: Problem): string | null {
  return typeof problem.permission === "string" ? problem.permission : null;
}

export default function AdminUsersPage() {
  const session = useRequireSignIn();
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [query, setQuery] = useState("");
  const [denied, setDenied] = useState<Problem | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [news, setNews] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const fetchPage = useCallback(async (search: string, after: string | null) => {
    setBusy("list");
    const answer = await attempt(
      api.GET("/api/v1/admin/users", {
        params: { query: { limit: PAGE_SIZE, ...(search ? { query: search } : {}), ...(after ? { cursor: after } : {}) } },
      }),
    );
    setBusy(null);
    if (!answer.data) {
      if (answer.problem?.code === "insufficient_permission") setDenied(answer.problem);
      else setProblem(answer.problem);
      return;
    }
    const page = answer.data;
    setDenied(null);
    setProblem(null);
    setUsers((shown) => {
      const before = after ? (shown ?? []) : [];
      const seen = new Set(before.map((user) => user.id));
      return [...before, ...page.items.filter((user) => !seen.has(user.id))];
    });
    setCursor(page.next_cursor);
  }, []);

  useEffect(() => {
    if (session.signedIn) void fetchPage("", null);
  }, [session.signedIn, fetchPage]);

  function search(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const text = String(new FormData(event.currentTarget).get("query") ?? "").trim();
    setQuery(text);
    setNews(null);
    void fetchPage(text, null);
  }

  async function setActive(user: AdminUser, active: boolean) {
    setBusy(user.id);
    setNews(null);
    const path = { params: { path: { user_id: user.id } } };
    const answer = await attempt(
      active ? api.POST("/api/v1/admin/users/{user_id}/enable", path) : api.POST("/api/v1/admin/users/{user_id}/disable", path),
    );
    setBusy(null);
    if (answer.ok) {
      setProblem(null);
      setUsers((list) => list?.map((item) => (item.id === user.id ? { ...item, is_active: active } : item)) ?? null);
      setNews(active ? `${user.email} is enabled: it can sign in again.` : `${user.email} is disabled and signed out everywhere.`);
      return;
    }
    const failed = answer.problem;
    if (failed?.code === "insufficient_permission") {
      const permission = permissionOf(failed);
      setProblem({ ...failed, detail: `You do not have permission to do this${permission ? ` (it needs ${permission})` : ""}.` });
    } else {
      setProblem(failed);
    }
  }

  if (denied) {
    const permission = permissionOf(denied);
    return (
      <>
        <h1>Users</h1>
        <Alert>
          You do not have permission to see this page.
          {permission ? (
            <>
              {" "}
              It needs the permission <code>{permission}</code>.
            </>
          ) : null}
        </Alert>
      </>
    );
  }

  return (
    <>
      <h1>Users</h1>
      <div className="card panel">
        <form role="search" aria-label="Users" onSubmit={search} noValidate className="search-form">
          <Field
            label="Search"
            name="query"
            autoComplete="off"
            spellCheck={false}
            hint="The start of an email address or username."
            defaultValue={query}
          />
          <div className="actions">
            <button type="submit" disabled={busy === "list"}>
              Search
            </button>
          </div>
        </form>
      </div>
      <Alert kind="success">{news}</Alert>
      {problem ? <Alert>{problem.code === "insufficient_permission" ? problem.detail : messageFor(problem)}</Alert> : null}
      {users === null ? (
        problem ? null : <p className="muted">Loading…</p>
      ) : users.length === 0 ? (
        <p className="muted" role="status">
          {query ? `No user's email address or username starts with “${query}”.` : "No users yet."}
        </p>
      ) : (
        <div className="table-wrap card panel wide">
          <table className="stack">
            <caption className="visually-hidden">
              Users{query ? `, starting with “${query}”` : ""}, newest first
            </caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Username</th>
                <th scope="col">Roles</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.map((user) => (
                <tr key={user.id} data-testid="admin-user" data-user-id={user.id}>
                  <td data-label="Email" className="wrap">
                    {user.email}
                    {user.email_verified ? null : (
                      <>
                        {" "}
                        <span className="badge badge-muted">not verified</span>
                      </>
                    )}
                  </td>
                  <td data-label="Username">{user.username ?? "—"}</td>
                  <td data-label="Roles">{user.roles.length ? user.roles.join(", ") : "—"}</td>
                  <td data-label="Status">
                    <span className={user.is_active ? "badge badge-ok" : "badge badge-off"}>{user.is_active ? "active" : "disabled"}</span>
                  </td>
                  <td data-label="Created">
                    <time dateTime={user.created_at}>{formatDate(user.created_at, "medium")}</time>
                  </td>
                  <td className="row-actions">
                    {user.is_active ? (
                      <button type="button" className="secondary" disabled={busy !== null} onClick={() => void setActive(user, false)}>
                        Disable
                      </button>
                    ) : (
                      <button type="button" className="secondary" disabled={busy !== null} onClick={() => void setActive(user, true)}>
                        Enable
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cursor && users ? (
        <div className="actions">
          <button type="button" className="secondary" disabled={busy === "list"} onClick={() => void fetchPage(query, cursor)}>
            Show more
          </button>
        </div>
      ) : null}
    </>
  );
}
