/**
 * Each bottle's own certificate authority: the key and certificate its
 * proxy signs with where it opens TLS (to put a secret in), made once per
 * state dir. The key stays in the state dir's egress/ (mode 0600, never
 * mounted into the agent); the agent gets the certificate only. Keys come
 * from node's crypto; the certificate is made with node-forge.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import forge from "node-forge"

/** A new CA for one bottle: a 2048-bit RSA key and a 10-year self-signed certificate, as mitmproxy's own would be. */
export const makeBottleCa = (bottle: string): { readonly keyPem: string; readonly certPem: string } => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const keyPem = privateKey.export({ type: "pkcs1", format: "pem" }).toString()
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString())
  // A positive serial (the high bit clear), random so two bottles' CAs never share one.
  const serial = randomBytes(16)
  serial[0] = serial[0]! & 0x7f
  cert.serialNumber = serial.toString("hex")
  const now = new Date()
  cert.validity.notBefore = new Date(now.getTime() - 24 * 3600 * 1000)
  cert.validity.notAfter = new Date(now.getTime() + 10 * 365 * 24 * 3600 * 1000)
  const name = [{ name: "commonName", value: `bottle ${bottle} CA` }, { name: "organizationName", value: "bottle" }]
  cert.setSubject(name)
  cert.setIssuer(name)
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" }
  ])
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create())
  return { keyPem, certPem: forge.pki.certificateToPem(cert) }
}

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
