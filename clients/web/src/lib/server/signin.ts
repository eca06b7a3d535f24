import "server-only";
import { NextResponse, type NextRequest } from "next/server";
import { clearCookie, setCookie } from "./cookies";
import { relay } from "./relay";
import { keepTokens, type TokenPair } from "./session";
import { json, type Upstream } from "./upstream";

/** The answer to a first or second factor: tokens into cookies and {signed_in: true}; or mfa_required passed on
 * without its token, which stays in a cookie for POST /bff/session/mfa; or the API's problem as it is. */
export function signedIn(request: NextRequest, upstream: Upstream): NextResponse {
  if (upstream.status === 200) {
    const response = NextResponse.json({ signed_in: true }, { headers: { "Cache-Control": "no-store" } });
    keepTokens(response, request, json<TokenPair>(upstream));
    clearCookie(response, request, "mfa");
    return response;
  }
  const body = upstream.headers.get("content-type")?.includes("json") ? json<Record<string, unknown>>(upstream) : null;
  if (upstream.status === 403 && body?.code === "mfa_required" && typeof body.mfa_token === "string") {
    const { mfa_token: token, ...rest } = body;
    const response = relay(upstream, JSON.stringify(rest));
    setCookie(response, request, "mfa", token, Number(body.expires_in) || 300);
    return response;
  }
  return relay(upstream);
}
