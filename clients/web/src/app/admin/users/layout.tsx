import type { Metadata } from "next";

export const metadata: Metadata = { title: "Users" };
export { default } from "@/components/PassThrough";
