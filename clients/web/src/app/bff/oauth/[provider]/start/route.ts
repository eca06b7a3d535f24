import { NextResponse, type NextRequest } from "next/server";
import { apiPublicUrl } from "@/lib/server/config";
import { setCookie } from "@/lib/server/cookies";
import { callbackUrl, pkcePair, PKCE_TTL_SECONDS, PROVIDER, tripCookie } from "@/lib/server/pkce";
import { problem } from "@/lib/server/problem";

type Context = { params: Promise<{ provider: string }> };

/** GET (a link the person follows): "Continue with <provider>". The browser goes to the API's authorize step, then
 * to the provider, and comes back to /bff/oauth/callback with a one-time login code. */
export async function GET(request: NextRequest, context: Context): Promise<Response> {
  const { provider } = await context.params;
  if (!PROVIDER.test(provider)) return problem(404, "unknown_provider", "There is no such identity provider.");
  const { verifier, challenge } = pkcePair();
  const target = new URL(`${apiPublicUrl()}/api/v1/auth/oauth/${provider}/authorize`);
  target.searchParams.set("redirect_uri", callbackUrl(request));
  target.searchParams.set("code_challenge", challenge);
  target.searchParams.set("code_challenge_method", "S256");
  const response = new NextResponse(null, { status: 303, headers: { Location: target.toString(), "Cache-Control": "no-store" } });
  setCookie(response, request, "pkce", tripCookie("signin", verifier), PKCE_TTL_SECONDS);
  return response;
}
