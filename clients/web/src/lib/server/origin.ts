import "server-only";
import type { NextRequest, NextResponse } from "next/server";
import { problem } from "./problem";

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Cross-site request forgery: a request that changes something must come from a page of this very origin. The
 * browser's Origin header is compared with the request's own host (so the client runs on any host and port with
 * no setting); without an Origin, Sec-Fetch-Site must say same-origin. Answers the 403, or null to go on.
 */
export function refuseCrossSite(request: NextRequest): NextResponse | null {
  if (SAFE.has(request.method)) return null;
  const origin = request.headers.get("origin");
  if (origin) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return refused();
    }
    const own = [request.headers.get("host"), request.headers.get("x-forwarded-host")?.split(",")[0]?.trim()];
    return own.includes(host) ? null : refused();
  }
  return request.headers.get("sec-fetch-site") === "same-origin" ? null : refused();
}

function refused(): NextResponse {
  return problem(403, "origin_mismatch", "This request did not come from a page of this site.");
}
