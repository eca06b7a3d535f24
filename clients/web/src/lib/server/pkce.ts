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
