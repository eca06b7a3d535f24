import type { Metadata } from "next";

export const metadata: Metadata = { title: "Delete account" };
export { default } from "@/components/PassThrough";
