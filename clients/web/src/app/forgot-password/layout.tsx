import type { Metadata } from "next";

export const metadata: Metadata = { title: "Reset your password" };
export { default } from "@/components/PassThrough";
