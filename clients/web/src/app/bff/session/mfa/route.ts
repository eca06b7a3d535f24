import type { NextRequest } from "next/server";
import { readCookie } from "@/lib/server/cookies";
import { refuseCrossSite } from "@/lib/server/origin";
import { problem } from "@/lib/server/problem";
import { signedIn } from "@/lib/server/signin";
import { callApi } from "@/lib/server/upstream";

/** POST {code}: the second step of a sign-in, with the mfa_required token this server kept in a cookie. */
export async function POST(request: NextRequest): Promise<Response> {
  const refused = refuseCrossSite(request);
  if (refused) return refused;
  const token = readCookie(request, "mfa");
  if (!token) return problem(401, "invalid_mfa_token", "This sign-in step has expired: sign in again.");
  let code: unknown;
  try {
    code = ((await request.json()) as { code?: unknown }).code;
  } catch {
    return problem(400, "malformed_json", "The request body is not JSON.");
  }
  const upstream = await callApi(request, "POST", "/api/v1/auth/login/mfa", {
    body: JSON.stringify({ mfa_token: token, code }),
    contentType: "application/json",
  });
  return signedIn(request, upstream);
}
