import createClient from "openapi-fetch";
import type { components, paths } from "./api-schema";

/**
 * The typed client of the pages. Its paths are the API's (/api/v1/...), generated from /openapi.json; they go to
 * this site's /bff/api/v1/..., where the server adds the access token from its HttpOnly cookie.
 */
export const api = createClient<paths>({ baseUrl: "/bff", credentials: "same-origin" });

/** A 401 from /bff means the session is over (signed out elsewhere, the password changed, expired): go and sign in,
 * then come back. The public routes never answer 401, so a wrong password elsewhere is not confused with it. */
api.use({
  onResponse({ response }) {
    if (response.status === 401 && typeof window !== "undefined" && !window.location.pathname.startsWith("/login")) {
      const back = window.location.pathname + window.location.search;
      window.location.assign(`/login?expired=1&next=${encodeURIComponent(back)}`);
    }
    return response;
  },
});

export type Problem = components["schemas"]["Problem"] & Record<string, unknown>;
export type User = components["schemas"]["UserOut"];

/** A problem+json body, or one made up for a network failure or a non-JSON answer. */
export function asProblem(error: unknown, status = 0): Problem {
  if (error && typeof error === "object" && "code" in error && typeof (error as Problem).code === "string") {
    return error as Problem;
  }
  return {
    type: "about:blank",
    title: "Error",
    status,
    code: status === 0 ? "network_error" : "unexpected_response",
    detail: status === 0 ? "The server could not be reached. Check your connection and try again." : "Something went wrong. Try again.",
    errors: null,
  };
}

/** The message of a field's error (`errors[].loc` ends with the field's name), if the problem names that field. */
export function fieldError(problem: Problem | null, field: string): string | undefined {
  return problem?.errors?.find((error) => error.loc[error.loc.length - 1] === field)?.msg;
}

/** Calls of this site's own server (not the API's paths): sign-in and sign-out. */
export async function bff(path: string, method: string, body?: unknown): Promise<{ ok: boolean; status: number; data: any }> {
  let response: Response;
  try {
    response = await fetch(`/bff${path}`, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    return { ok: false, status: 0, data: asProblem(null) };
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data: response.ok ? data : asProblem(data, response.status) };
}
