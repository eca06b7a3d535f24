import "server-only";
import { createHash } from "node:crypto";
import type { NextRequest, NextResponse } from "next/server";
import { clearCookie, readCookie, setCookie } from "./cookies";
import { callApi, json, type Upstream } from "./upstream";

/** The API's token pair (POST /auth/login, /auth/refresh, /auth/login/mfa, /auth/oauth/token). */
export type TokenPair = {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  refresh_expires_in: number;
};

/** Keep the tokens of a fresh pair in their HttpOnly cookies. */
export function keepTokens(response: NextResponse, request: NextRequest, pair: TokenPair): void {
  setCookie(response, request, "access", pair.access_token, pair.expires_in);
  setCookie(response, request, "refresh", pair.refresh_token, pair.refresh_expires_in);
}

export function dropTokens(response: NextResponse, request: NextRequest): void {
  clearCookie(response, request, "access");
  clearCookie(response, request, "refresh");
}

/** The claims of an access token, read (not verified: the API verifies it) to know when to refresh and for UI hints. */
export function claims(accessToken: string): { exp?: number; iat?: number; roles?: string[]; amr?: string[] } {
  const payload = accessToken.split(".")[1];
  if (!payload) return {};
  try {
    return JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return {};
  }
}

/** Refresh this long before the access token expires: a quarter of its lifetime, at most 30 seconds. */
function dueForRefresh(accessToken: string, now: number): boolean {
  const { exp, iat } = claims(accessToken);
  if (typeof exp !== "number") return true;
  const margin = Math.min(30, typeof iat === "number" ? (exp - iat) / 4 : 30);
  return now >= exp - margin;
}

type Flight = { result: Promise<Refreshed>; done: boolean };
export type Refreshed = { pair: TokenPair } | { failed: Upstream };

/**
 * Refresh tokens rotate: the API answers a refresh token used twice as a theft and ends the session. Two tabs (or
 * two parallel requests of one page) that find the access token expired would each send the same refresh token, so
 * refreshes are single-flight per refresh token: the first starts the call, the others await its result. The
 * result is kept for GRACE_MS afterwards for requests that left the browser before its new cookies arrived, which
 * still carry the old refresh token. Kept in this process's memory: run one instance of the client per session
 * (sticky sessions) or share this table (e.g. in Redis) when scaling the client out.
 */
const GRACE_MS = 60_000;
const FLIGHTS_KEY = Symbol.for("usermgmt.refresh-flights");
const flights: Map<string, Flight> = ((globalThis as Record<symbol, unknown>)[FLIGHTS_KEY] ??= new Map()) as Map<
  string,
  Flight
>;

export function refreshOnce(request: NextRequest, refreshToken: string): Promise<Refreshed> {
  const key = createHash("sha256").update(refreshToken).digest("base64url");
  const running = flights.get(key);
  if (running) return running.result;
  const flight: Flight = {
    done: false,
    result: (async (): Promise<Refreshed> => {
      const upstream = await callApi(request, "POST", "/api/v1/auth/refresh", {
        body: JSON.stringify({ refresh_token: refreshToken }),
        contentType: "application/json",
      });
      return upstream.status === 200 ? { pair: json<TokenPair>(upstream) } : { failed: upstream };
    })(),
  };
  flights.set(key, flight);
  flight.result
    .catch(() => undefined)
    .finally(() => {
      flight.done = true;
      setTimeout(() => flights.delete(key), GRACE_MS).unref?.();
    });
  return flight.result;
}

export type Credentials = {
  /** The access token to send, or null when signed out (no usable token and no refresh token). */
  accessToken: string | null;
  /** A pair the response must store (the tokens were refreshed on the way). */
  refreshed?: TokenPair;
  /** The refresh failed: the cookies must go, and this is the API's answer. */
  failed?: Upstream;
};

/** The access token for a request: the cookie's, or a fresh one when it is missing or about to expire. */
export async function credentials(request: NextRequest, force = false): Promise<Credentials> {
  const access = readCookie(request, "access");
  const refresh = readCookie(request, "refresh");
  if (access && !force && !dueForRefresh(access, Date.now() / 1000)) return { accessToken: access };
  if (!refresh) return { accessToken: force ? null : access ?? null };
  const outcome = await refreshOnce(request, refresh);
  if ("pair" in outcome) return { accessToken: outcome.pair.access_token, refreshed: outcome.pair };
  return { accessToken: null, failed: outcome.failed };
}

/** Store what ``credentials`` found on the way (a new pair, or the end of the session). */
export function settle(response: NextResponse, request: NextRequest, found: Credentials): NextResponse {
  if (found.refreshed) keepTokens(response, request, found.refreshed);
  if (found.failed?.status === 401) dropTokens(response, request); // the session is over (a 429 or 503 is not)
  return response;
}
