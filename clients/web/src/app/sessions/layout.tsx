import type { Metadata } from "next";

export const metadata: Metadata = { title: "Active sessions" };
export { default } from "@/components/PassThrough";
