import { NextResponse, type NextRequest } from "next/server";
import { clearCookie } from "@/lib/server/cookies";
import { refuseCrossSite } from "@/lib/server/origin";
import { claims, credentials, dropTokens, settle } from "@/lib/server/session";
import { signedIn } from "@/lib/server/signin";
import { callApi } from "@/lib/server/upstream";

/** GET: whether this browser is signed in, with the roles and sign-in methods of its token, for the menus only
 * (the API decides what is allowed). No token is ever in the answer. */
export async function GET(request: NextRequest): Promise<Response> {
  const found = await credentials(request);
  const seen = found.accessToken ? claims(found.accessToken) : null;
  const body = { signed_in: seen !== null, roles: seen?.roles ?? [], amr: seen?.amr ?? [] };
  return settle(NextResponse.json(body, { headers: { "Cache-Control": "no-store" } }), request, found);
}

/** POST {login, password}: sign in. 200 {signed_in: true} with the tokens in cookies, or the API's problem. */
export async function POST(request: NextRequest): Promise<Response> {
  const refused = refuseCrossSite(request);
  if (refused) return refused;
  const upstream = await callApi(request, "POST", "/api/v1/auth/login", {
    body: await request.arrayBuffer(),
    contentType: request.headers.get("content-type"),
  });
  return signedIn(request, upstream);
}

/** DELETE: sign out this browser (the API ends the session) and forget the tokens, whatever the API answers. */
export async function DELETE(request: NextRequest): Promise<Response> {
  const refused = refuseCrossSite(request);
  if (refused) return refused;
  const found = await credentials(request);
  if (found.accessToken) {
    await callApi(request, "POST", "/api/v1/auth/logout", { accessToken: found.accessToken }).catch(() => undefined);
  }
  const response = new NextResponse(null, { status: 204, headers: { "Cache-Control": "no-store" } });
  dropTokens(response, request);
  clearCookie(response, request, "mfa");
  return response;
}
