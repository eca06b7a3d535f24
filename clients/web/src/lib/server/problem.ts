import "server-only";
import { NextResponse } from "next/server";

/** An RFC 9457 problem answered by the client's own server (the API's problems are passed on as they are). */
export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): NextResponse {
  return NextResponse.json(
    { type: "about:blank", title: TITLES[status] ?? "Error", status, detail, code, ...extra },
    { status, headers: { "Content-Type": "application/problem+json", "Cache-Control": "no-store" } },
  );
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  502: "Bad Gateway",
  503: "Service Unavailable",
};
