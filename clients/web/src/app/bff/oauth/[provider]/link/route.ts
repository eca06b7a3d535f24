import { NextResponse, type NextRequest } from "next/server";
import { setCookie } from "@/lib/server/cookies";
import { refuseCrossSite } from "@/lib/server/origin";
import { callbackUrl, pkcePair, PKCE_TTL_SECONDS, PROVIDER, tripCookie } from "@/lib/server/pkce";
import { problem } from "@/lib/server/problem";
import { relay } from "@/lib/server/relay";
import { credentials, settle } from "@/lib/server/session";
import { callApi, json } from "@/lib/server/upstream";

type Context = { params: Promise<{ provider: string }> };

/** POST: link a provider account to the signed-in one, from settings. 200 {authorization_url}: the page sends the
 * browser there; it comes back to /bff/oauth/callback with ?linked= or ?error=. */
export async function POST(request: NextRequest, context: Context): Promise<Response> {
  const refused = refuseCrossSite(request);
  if (refused) return refused;
  const { provider } = await context.params;
  if (!PROVIDER.test(provider)) return problem(404, "unknown_provider", "There is no such identity provider.");
  const found = await credentials(request);
  if (found.failed) return settle(relay(found.failed), request, found);
  if (!found.accessToken) return problem(401, "not_signed_in", "Sign in first.");
  const { verifier, challenge } = pkcePair();
  const upstream = await callApi(request, "POST", `/api/v1/users/me/identities/${provider}`, {
    body: JSON.stringify({ redirect_uri: callbackUrl(request), code_challenge: challenge, code_challenge_method: "S256" }),
    contentType: "application/json",
    accessToken: found.accessToken,
  });
  if (upstream.status !== 200) return settle(relay(upstream), request, found);
  const response = NextResponse.json(json<{ authorization_url: string }>(upstream), { headers: { "Cache-Control": "no-store" } });
  setCookie(response, request, "pkce", tripCookie("link", verifier), PKCE_TTL_SECONDS);
  return settle(response, request, found);
}
