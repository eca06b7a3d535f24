import type { Metadata } from "next";

export const metadata: Metadata = { title: "Create an account" };
export { default } from "@/components/PassThrough";
