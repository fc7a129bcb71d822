/**
 * Each bottle's own certificate authority: the key and certificate its
 * proxy signs with where it opens TLS (to put a secret in), made once per
 * state dir. The key stays in the state dir's egress/ (mode 0600, never
 * mounted into the agent); the agent gets the certificate only. Making one
 * is in bottleCaMake.ts (node-forge, loaded only then).
 */
import { readFileSync } from "node:fs"

/** The certificate part of a mitmproxy CA file (key and certificate in one PEM). */
export const certificateOf = (caPem: string): string | undefined => /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(caPem)?.[0]

/** The host's own bundle of trusted CAs, where the usual systems keep it; empty when there is none. */
export const hostCaBundle = (): string => {
  for (const p of ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem"]) {
    try {
      const text = readFileSync(p, "utf8")
      if (text.includes("-----BEGIN CERTIFICATE-----")) return text.endsWith("\n") ? text : `${text}\n`
    } catch { /* not here */ }
  }
  return ""
}
