import { NextResponse, type NextRequest } from "next/server";
import { clearCookie, readCookie } from "@/lib/server/cookies";
import { readTrip } from "@/lib/server/pkce";
import { signedIn } from "@/lib/server/signin";
import { callApi, problemCode } from "@/lib/server/upstream";

/** GET: the API sends the browser back here from the provider with ?login_code=, ?linked= or ?error=. The login
 * code and this browser's PKCE verifier are exchanged for tokens here, on the server: no token reaches the page. */
export async function GET(request: NextRequest): Promise<Response> {
  const query = request.nextUrl.searchParams;
  const trip = readTrip(readCookie(request, "pkce"));
  const verifier = trip?.verifier;
  const error = query.get("error");
  const linked = query.get("linked");
  const loginCode = query.get("login_code");
  let response: NextResponse;
  if (error) {
    // A link started from settings goes back there, signed in as before; a sign-in goes back to the sign-in page.
    const page = trip?.purpose === "link" ? "/security" : "/login";
    response = goTo(`${page}?error=${encodeURIComponent(error)}`);
  } else if (linked) {
    response = goTo(`/security?linked=${encodeURIComponent(linked)}`);
  } else if (loginCode && verifier) {
    const upstream = await callApi(request, "POST", "/api/v1/auth/oauth/token", {
      body: JSON.stringify({ login_code: loginCode, code_verifier: verifier }),
      contentType: "application/json",
    });
    const answer = signedIn(request, upstream);
    const code = problemCode(upstream);
    response = goTo(upstream.status === 200 ? "/profile" : code === "mfa_required" ? "/login?step=mfa" : `/login?error=${code ?? "invalid_login_code"}`);
    for (const cookie of answer.cookies.getAll()) response.cookies.set(cookie);
  } else {
    response = goTo("/login?error=invalid_login_code");
  }
  clearCookie(response, request, "pkce");
  response.headers.set("Referrer-Policy", "no-referrer");
  return response;
}

function goTo(path: string): NextResponse {
  return new NextResponse(null, { status: 303, headers: { Location: path, "Cache-Control": "no-store" } });
}
