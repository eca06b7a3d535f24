import "server-only";
import type { NextRequest, NextResponse } from "next/server";

/**
 * Every cookie the client sets. All are HttpOnly (no page script can read them), SameSite=Lax (not sent with
 * cross-site subrequests or form posts), Secure unless served over plain http on a loopback host, and scoped to
 * the path of the route handlers that need them: the pages themselves never receive a token.
 */
export const COOKIES = {
  access: { name: "usermgmt_access", path: "/bff" },
  refresh: { name: "usermgmt_refresh", path: "/bff" },
  /** The second-step token of a sign-in with two-factor authentication on (5 minutes). */
  mfa: { name: "usermgmt_mfa", path: "/bff/session" },
  /** The PKCE verifier of a trip to an identity provider (10 minutes). */
  pkce: { name: "usermgmt_pkce", path: "/bff/oauth" },
} as const;

export type CookieKind = keyof typeof COOKIES;

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The origin the browser used: the request's own Host (or the proxy's X-Forwarded-Host), never a setting. */
export function requestOrigin(request: NextRequest): URL {
  const host = request.headers.get("x-forwarded-host")?.split(",")[0]?.trim() || request.headers.get("host");
  const proto =
    request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim() || request.nextUrl.protocol.replace(":", "");
  return new URL(`${proto}://${host ?? request.nextUrl.host}`);
}

export function secureCookies(request: NextRequest): boolean {
  const origin = requestOrigin(request);
  return !(origin.protocol === "http:" && LOOPBACK.has(origin.hostname));
}

export function setCookie(
  response: NextResponse,
  request: NextRequest,
  kind: CookieKind,
  value: string,
  maxAgeSeconds: number,
): void {
  const { name, path } = COOKIES[kind];
  response.cookies.set({
    name,
    value,
    path,
    maxAge: Math.max(1, Math.floor(maxAgeSeconds)),
    httpOnly: true,
    sameSite: "lax",
    secure: secureCookies(request),
  });
}

export function clearCookie(response: NextResponse, request: NextRequest, kind: CookieKind): void {
  const { name, path } = COOKIES[kind];
  response.cookies.set({ name, value: "", path, maxAge: 0, httpOnly: true, sameSite: "lax", secure: secureCookies(request) });
}

export function readCookie(request: NextRequest, kind: CookieKind): string | undefined {
  return request.cookies.get(COOKIES[kind].name)?.value || undefined;
}
