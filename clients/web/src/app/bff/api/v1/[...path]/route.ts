import type { NextRequest } from "next/server";
import { refuseCrossSite } from "@/lib/server/origin";
import { problem } from "@/lib/server/problem";
import { relay } from "@/lib/server/relay";
import { credentials, dropTokens, settle, type Credentials } from "@/lib/server/session";
import { callApi, problemCode } from "@/lib/server/upstream";

/**
 * The pages' way to the API: /bff/api/v1/<path> is /api/v1/<path> of the API, with the access token from the
 * HttpOnly cookie added on this server. Only the routes a page needs are passed; the ones that hand out tokens
 * (login, refresh, the login code) are answered by /bff/session and /bff/oauth, which keep the tokens in cookies.
 */
const PUBLIC = [
  /^auth\/register$/,
  /^auth\/password\/(forgot|reset)$/,
  /^auth\/email\/(verify|confirm)$/,
  /^auth\/account\/restore$/,
  /^auth\/oauth\/providers$/,
];
const AUTHENTICATED = [/^users\/me(\/.*)?$/, /^admin\/.+$/];
/** Linking a provider needs this server's PKCE verifier: /bff/oauth/{provider}/link. */
const ELSEWHERE = [/^users\/me\/identities\/[^/]+$/];

type Context = { params: Promise<{ path: string[] }> };

async function handle(request: NextRequest, context: Context): Promise<Response> {
  const refused = refuseCrossSite(request);
  if (refused) return refused;
  const segments = (await context.params).path;
  if (segments.some((segment) => segment === "." || segment === "..")) {
    return problem(404, "not_found", "There is no such route.");
  }
  const path = segments.map(encodeURIComponent).join("/");
  const publicRoute = PUBLIC.some((rule) => rule.test(path));
  const elsewhere = request.method === "POST" && ELSEWHERE.some((rule) => rule.test(path));
  if (elsewhere || (!publicRoute && !AUTHENTICATED.some((rule) => rule.test(path)))) {
    return problem(404, "not_found", "There is no such route.");
  }
  const target = `/api/v1/${path}${request.nextUrl.search}`;
  const body = ["GET", "HEAD"].includes(request.method) ? undefined : await request.arrayBuffer();
  const contentType = request.headers.get("content-type");

  if (publicRoute) {
    return relay(await callApi(request, request.method, target, { body, contentType }));
  }
  let found: Credentials = await credentials(request);
  if (found.failed) return settle(relay(found.failed), request, found);
  if (!found.accessToken) return problem(401, "not_signed_in", "Sign in first.");
  let upstream = await callApi(request, request.method, target, { body, contentType, accessToken: found.accessToken });
  if (upstream.status === 401 && problemCode(upstream) === "invalid_token" && !found.refreshed) {
    // The token died before its time (a restart with new keys, a clock skew): one forced refresh, then once more.
    found = await credentials(request, true);
    if (found.failed || !found.accessToken) {
      return settle(found.failed ? relay(found.failed) : relay(upstream), request, { ...found, failed: found.failed ?? upstream });
    }
    upstream = await callApi(request, request.method, target, { body, contentType, accessToken: found.accessToken });
  }
  const response = settle(relay(upstream), request, found);
  const erased = request.method === "DELETE" && path === "users/me" && [200, 202].includes(upstream.status);
  if (erased || upstream.status === 401) dropTokens(response, request);
  return response;
}

export const GET = handle;
export const POST = handle;
export const PATCH = handle;
export const PUT = handle;
export const DELETE = handle;
