/** Making a bottle's CA: keys from node's crypto, the certificate with node-forge. */
import { generateKeyPairSync, randomBytes } from "node:crypto"
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

