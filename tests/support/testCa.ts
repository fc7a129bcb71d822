/** A throwaway CA and a server certificate it signs, for fake upstreams in tests. */
import forge from "node-forge"

export interface TestPki {
  readonly caPem: string
  readonly certPem: string
  readonly keyPem: string
}

const cert = (subject: string, key: forge.pki.rsa.KeyPair, issuer: { name: string; key: forge.pki.rsa.PrivateKey }, ca: boolean, dns?: string) => {
  const c = forge.pki.createCertificate()
  c.publicKey = key.publicKey
  c.serialNumber = `0${Math.floor(Math.random() * 1e12).toString(16)}`
  c.validity.notBefore = new Date(Date.now() - 3600_000)
  c.validity.notAfter = new Date(Date.now() + 3 * 24 * 3600_000)
  c.setSubject([{ name: "commonName", value: subject }])
  c.setIssuer([{ name: "commonName", value: issuer.name }])
  c.setExtensions(ca
    ? [{ name: "basicConstraints", cA: true, critical: true }, { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true }]
    : [{ name: "basicConstraints", cA: false }, { name: "subjectAltName", altNames: [{ type: 2, value: dns }] }, { name: "extKeyUsage", serverAuth: true }])
  c.sign(issuer.key, forge.md.sha256.create())
  return forge.pki.certificateToPem(c)
}

/** A CA named `test upstream CA` and a certificate for `host` it signed. */
export const makeTestPki = (host: string): TestPki => {
  const caKey = forge.pki.rsa.generateKeyPair(2048)
  const serverKey = forge.pki.rsa.generateKeyPair(2048)
  const caPem = cert("test upstream CA", caKey, { name: "test upstream CA", key: caKey.privateKey }, true)
  return { caPem, certPem: cert(host, serverKey, { name: "test upstream CA", key: caKey.privateKey }, false, host), keyPem: forge.pki.privateKeyToPem(serverKey.privateKey) }
}
