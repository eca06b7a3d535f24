import fs from "node:fs";
import path from "node:path";
import { runState } from "./env";

/**
 * The API's development mailer writes each message as <DATA_DIR>/mail/<UTC time>-<template>-<id>.eml: a MIME
 * message with a text part and its HTML alternative, each 7bit, quoted-printable or base64. This reads them.
 */
export type Mail = { file: string; headers: Map<string, string>; text: string; html: string };

type Part = { headers: Map<string, string>; body: Buffer };

function splitHeaders(raw: Buffer): Part {
  const text = raw.toString("latin1");
  const match = /\r?\n\r?\n/.exec(text);
  const head = match ? text.slice(0, match.index) : text;
  const body = match ? raw.subarray(Buffer.byteLength(text.slice(0, match.index + match[0].length), "latin1")) : Buffer.alloc(0);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body };
}

function parameter(header: string | undefined, name: string): string | undefined {
  const match = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(header ?? "");
  return match ? (match[1] ?? match[2]) : undefined;
}

function decode(part: Part): string {
  const encoding = (part.headers.get("content-transfer-encoding") ?? "7bit").toLowerCase();
  const charset = (parameter(part.headers.get("content-type"), "charset") ?? "utf-8").toLowerCase();
  let bytes: Buffer;
  if (encoding === "base64") {
    bytes = Buffer.from(part.body.toString("latin1").replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
  } else if (encoding === "quoted-printable") {
    const soft = part.body.toString("latin1").replace(/=\r?\n/g, "");
    const out: number[] = [];
    for (let i = 0; i < soft.length; i++) {
      const hex = soft.slice(i + 1, i + 3);
      if (soft[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        out.push(parseInt(hex, 16));
        i += 2;
      } else {
        out.push(soft.charCodeAt(i));
      }
    }
    bytes = Buffer.from(out);
  } else {
    bytes = part.body;
  }
  return new TextDecoder(charset === "us-ascii" ? "utf-8" : charset).decode(bytes);
}

/** Every leaf of a (possibly nested) multipart message, by content type. */
function leaves(part: Part, found: Part[] = []): Part[] {
  const type = part.headers.get("content-type") ?? "text/plain";
  const boundary = parameter(type, "boundary");
  if (!/^multipart\//i.test(type) || !boundary) {
    found.push(part);
    return found;
  }
  const text = part.body.toString("latin1");
  const delimiter = `--${boundary}`;
  const chunks = text.split(new RegExp(`\\r?\\n?${delimiter.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  for (const chunk of chunks.slice(1)) {
    if (chunk.startsWith("--")) break; // the closing delimiter
    leaves(splitHeaders(Buffer.from(chunk.replace(/^[ \t]*\r?\n/, ""), "latin1")), found);
  }
  return found;
}

export function parseMail(file: string): Mail {
  const message = splitHeaders(fs.readFileSync(file));
  let text = "";
  let html = "";
  for (const leaf of leaves(message)) {
    const type = (leaf.headers.get("content-type") ?? "text/plain").toLowerCase();
    if (type.startsWith("text/plain")) text += decode(leaf);
    else if (type.startsWith("text/html")) html += decode(leaf);
  }
  return { file, headers: message.headers, text, html };
}

/** The UTC time in the file's name (<YYYYMMDDTHHMMSSffffff>Z-…), in ms. */
function writtenAt(name: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})\d*Z-/.exec(name);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!) : 0;
}

/**
 * The newest message of `template` to `to`, written after `since` (ms; a little slack for the clocks), waiting for
 * the outbox (it polls every second) to deliver it.
 */
export async function waitForMail(options: { to: string; template: string; since?: number; timeoutMs?: number }): Promise<Mail> {
  const dir = runState().mailDir;
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const since = (options.since ?? 0) - 2_000;
  const to = options.to.toLowerCase();
  for (;;) {
    const names = fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((name) => name.endsWith(".eml") && !name.startsWith(".") && name.includes(`-${options.template}-`))
          .filter((name) => writtenAt(name) >= since)
          .sort()
          .reverse()
      : [];
    for (const name of names) {
      const mail = parseMail(path.join(dir, name));
      if ((mail.headers.get("to") ?? "").toLowerCase().includes(to)) return mail;
    }
    if (Date.now() > deadline) {
      throw new Error(`no "${options.template}" message to ${options.to} in ${dir} within ${options.timeoutMs ?? 15_000} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The link to `{FRONTEND_URL}{pathname}?token=…` in a message: the text part's, else the HTML part's. */
export function linkIn(mail: Mail, pathname: string): string {
  const base = runState().webUrl;
  const pattern = new RegExp(`${(base + pathname).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\?token=[^\\s"'<>]+`);
  const found = pattern.exec(mail.text)?.[0] ?? pattern.exec(mail.html)?.[0]?.replace(/&amp;/g, "&");
  if (!found) throw new Error(`no ${base}${pathname}?token=… link in ${mail.file}:\n${mail.text || mail.html}`);
  return found.replace(/[.,;:)\]]+$/, "");
}
