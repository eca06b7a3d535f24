import "server-only";
import { createHash, randomBytes } from "node:crypto";
import type { NextRequest } from "next/server";
import { requestOrigin } from "./cookies";

/** A PKCE pair (RFC 7636, S256): the verifier stays in this server's cookie, the challenge goes to the API. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** Where the API sends the browser back: list it in the API's USERMGMT_OAUTH_REDIRECT_URIS. */
export function callbackUrl(request: NextRequest): string {
  return new URL("/bff/oauth/callback", requestOrigin(request)).toString();
}

export const PROVIDER = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const PKCE_TTL_SECONDS = 600;

/** Why the browser left for the provider: its callback goes back to the page the trip started from. */
export type TripPurpose = "signin" | "link";

/** The PKCE cookie's value: the trip's purpose and its verifier (base64url, so the dot cannot occur in it). */
export function tripCookie(purpose: TripPurpose, verifier: string): string {
  return `${purpose}.${verifier}`;
}

export function readTrip(value: string | undefined): { purpose: TripPurpose; verifier: string } | null {
  const [purpose, verifier] = (value ?? "").split(".", 2);
  return (purpose === "signin" || purpose === "link") && verifier ? { purpose, verifier } : null;
}
