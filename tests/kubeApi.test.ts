/**
 * The Kubernetes side of issue #11 that stands without a cluster: the
 * kubeconfig as kubectl reads it, and bottle's API client against an
 * in-process FAKE API server (tests/support/fakeKube.ts) that speaks the
 * contract bottle relies on. Not yet wired to a backend.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration, Effect } from "effect"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { stringify } from "yaml"
import { KubeApi, layer, refOf, RESOURCES, type KubeError } from "../src/observers/KubeApi.js"
import { kubeconfigPaths, resolveKubeconfig, type KubeTarget } from "../src/resources/kubeconfig.js"
import { Applyset, applysetId, applysetParent, groupKindOf, parentRef, realiseKubernetes, type KubernetesContext } from "../src/resources/realiseKubernetes.js"
import { startFakeKube, type FakeKube } from "./support/fakeKube.js"
import { bottle } from "./support/fixtures.js"

const PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
const b64 = (s: string) => Buffer.from(s).toString("base64")

const config = (over: Record<string, unknown> = {}) => stringify({
  apiVersion: "v1",
  kind: "Config",
  "current-context": "dev",
  contexts: [{ name: "dev", context: { cluster: "c1", user: "u1", namespace: "team" } }, { name: "prod", context: { cluster: "c2", user: "u2" } }],
  clusters: [{ name: "c1", cluster: { server: "https://10.0.0.1:6443", "certificate-authority-data": b64(PEM) } }, { name: "c2", cluster: { server: "https://prod:443", "certificate-authority": "ca.crt" } }],
  users: [{ name: "u1", user: { token: "t0k3n" } }, { name: "u2", user: { exec: { command: "aws", args: ["eks", "get-token"] } } }],
  ...over
})

const noFiles = (p: string): string => { throw Object.assign(new Error(`ENOENT ${p}`), { code: "ENOENT" }) }

describe("the kubeconfig, as kubectl reads it", () => {
  it("takes KUBECONFIG's files in order, else ~/.kube/config", () => {
    expect(kubeconfigPaths({ KUBECONFIG: "/a:/b::" }, "/home/u")).toEqual(["/a", "/b"])
    expect(kubeconfigPaths({}, "/home/u")).toEqual(["/home/u/.kube/config"])
  })

  it("uses the current context's cluster, CA, token and namespace", () => {
    const t = resolveKubeconfig([{ path: "/k/config", text: config() }], undefined, noFiles) as KubeTarget
    expect(t).toMatchObject({ context: "dev", server: "https://10.0.0.1:6443", namespace: "team", ca: PEM, token: "t0k3n", insecureSkipTlsVerify: false })
  })

  it("lets the first file to name a thing win, and --context choose another", () => {
    const first = stringify({ "current-context": "other", contexts: [{ name: "other", context: { cluster: "c1" } }], clusters: [{ name: "c1", cluster: { server: "https://first:6443" } }] })
    const t = resolveKubeconfig([{ path: "/k/a", text: first }, { path: "/k/b", text: config() }], undefined, noFiles) as KubeTarget
    expect(t.server).toBe("https://first:6443")
    expect(t.context).toBe("other")
    const d = resolveKubeconfig([{ path: "/k/a", text: first }, { path: "/k/b", text: config() }], "dev", noFiles) as KubeTarget
    expect(d.server).toBe("https://first:6443") // c1 of the first file wins over c1 of the second
    expect(d.token).toBe("t0k3n")
  })

  it("reads a relative CA file next to the kubeconfig, and says which file is missing", () => {
    const dir = mkdtempSync(join(tmpdir(), "kube-"))
    writeFileSync(join(dir, "ca.crt"), PEM)
    const text = config({ users: [{ name: "u2", user: { token: "x" } }] })
    const t = resolveKubeconfig([{ path: join(dir, "config"), text }], "prod", (p) => require("node:fs").readFileSync(p, "utf8")) as KubeTarget
    expect(t.ca).toBe(PEM)
    expect(resolveKubeconfig([{ path: "/nowhere/config", text }], "prod", noFiles)).toBe("/nowhere/config: certificate-authority /nowhere/ca.crt: ENOENT")
  })

  it("refuses, naming the file, what bottle will not do: run a credential plugin, use a context that is not there, a server with a path", () => {
    const withCa = (p: string) => (p.endsWith("ca.crt") ? PEM : noFiles(p))
    expect(resolveKubeconfig([{ path: "/k/config", text: config() }], "prod", withCa)).toMatch(/^\/k\/config: users\[u2\] runs a credential plugin \(exec\)/)
    expect(resolveKubeconfig([{ path: "/k/config", text: config() }], "staging", noFiles)).toMatch(/no context 'staging'/)
    expect(resolveKubeconfig([{ path: "/k/config", text: config({ clusters: [{ name: "c1", cluster: { server: "https://h/x" } }] }) }], undefined, noFiles)).toMatch(/^\/k\/config: clusters\[c1\]\.cluster\.server must be/)
    expect(resolveKubeconfig([{ path: "/k/config", text: "a: [" }], undefined, noFiles)).toMatch(/^\/k\/config: not YAML/)
  })
})

const ctx: KubernetesContext = { namespace: "bottle-default", prefix: "claude-bottle", tooling: "bottle/0.1.0", egressImage: undefined, proxyUser: "65534:65534", stateSize: "1Gi" }

describe("the API client, against a fake API server", () => {
  let fake: FakeKube
  beforeEach(async () => { fake = await startFakeKube({ token: "t0k3n" }) })
  afterEach(() => fake.close())

  const target = (over: Partial<KubeTarget> = {}): KubeTarget =>
    ({ context: "test", server: fake.url, namespace: undefined, ca: undefined, insecureSkipTlsVerify: false, token: "t0k3n", clientCert: undefined, clientKey: undefined, ...over })
  const run = <A>(f: (k: typeof KubeApi.Service) => Effect.Effect<A, KubeError>, over: Partial<KubeTarget> = {}, timeout: Duration.DurationInput = "5 seconds") =>
    Effect.runPromise(Effect.flatMap(KubeApi, f).pipe(Effect.provide(layer({ target: target(over), timeout })), Effect.either))

  const manifests = () => {
    const ms = realiseKubernetes(bottle("dev"), ctx).manifests
    return [applysetParent("default", ctx, ms.map(groupKindOf)), ...ms]
  }

  it("applies server-side as 'bottle', never forced, and lists a set's members by its ApplySet label", async () => {
    const all = manifests()
    const applied = await run((k) => Effect.forEach(all, (m) => k.apply(m)))
    expect(applied._tag).toBe("Right")
    const patches = fake.requests.filter((r) => r.method === "PATCH")
    expect(patches).toHaveLength(all.length)
    for (const p of patches) {
      expect(p.contentType).toBe("application/apply-patch+yaml")
      expect(p.query.get("fieldManager")).toBe("bottle")
      expect(p.query.has("force")).toBe(false)
    }
    const id = applysetId(parentRef("default", "bottle-default", "claude-bottle"))
    const listed = await run((k) => Effect.forEach(RESOURCES.filter((r) => r.group !== "agents.x-k8s.io"), (r) => k.list(r, "bottle-default", `${Applyset.partOf}=${id}`)))
    expect(listed._tag === "Right" && listed.right.flat().map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(all.slice(1).map((m) => `${m.kind}/${m.metadata.name}`).sort())
    // The parent carries the id, not part-of: it is found by its own label.
    const parent = await run((k) => k.list(refOf("v1", "ConfigMap")!, "bottle-default", `${Applyset.id}=${id}`))
    expect(parent._tag === "Right" && parent.right.map((o) => o.metadata.name)).toEqual(["applyset.claude-bottle.default"])
  })

  it("applying the same again changes nothing: same uid, same resourceVersion", async () => {
    const [m] = manifests().filter((x) => x.kind === "StatefulSet")
    const a = await run((k) => k.apply(m!))
    const b = await run((k) => k.apply(m!))
    expect(a._tag === "Right" && b._tag === "Right").toBe(true)
    if (a._tag === "Right" && b._tag === "Right") {
      expect(b.right.metadata.uid).toBe(a.right.metadata.uid)
      expect(b.right.metadata.resourceVersion).toBe(a.right.metadata.resourceVersion)
    }
  })

  it("a field another manager owns fails the apply, naming that manager; nothing is forced over it", async () => {
    const [sts] = manifests().filter((x) => x.kind === "StatefulSet")
    expect((await run((k) => k.apply(sts!)))._tag).toBe("Right")
    expect(fake.applyAs("kubectl-edit", { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: sts!.metadata.name, namespace: "bottle-default" }, spec: { replicas: 3 } }, true).status).toBe(200)
    const again = await run((k) => k.apply({ ...sts!, spec: { ...(sts!.spec as object), replicas: 1 } }))
    expect(again._tag).toBe("Left")
    if (again._tag === "Left") {
      expect(again.left.reason).toBe("Conflict")
      expect(again.left.managers).toEqual(["kubectl-edit"])
      expect(again.left.message).toContain("'kubectl-edit'")
    }
    expect(fake.objects().find((o) => o.kind === "StatefulSet")!.spec.replicas).toBe(3)
  })

  it("deletes only the object of the UID it observed: one made anew under the name stays", async () => {
    const [cm] = manifests().filter((x) => x.kind === "PersistentVolumeClaim")
    const ref = refOf(cm!.apiVersion, cm!.kind)!
    const first = await run((k) => k.apply(cm!))
    if (first._tag !== "Right") throw new Error("apply failed")
    const stale = "00000000-0000-0000-0000-000000000000"
    const refused = await run((k) => k.remove(ref, "bottle-default", cm!.metadata.name, stale))
    expect(refused._tag === "Left" && refused.left.reason).toBe("Conflict")
    expect(fake.objects()).toHaveLength(1)
    expect((await run((k) => k.remove(ref, "bottle-default", cm!.metadata.name, first.right.metadata.uid)))._tag).toBe("Right")
    expect(fake.objects()).toHaveLength(0)
  })

  it("never makes a namespace: applying into one that is not there fails and makes nothing", async () => {
    const [sa] = manifests().filter((x) => x.kind === "ServiceAccount")
    const r = await run((k) => k.apply({ ...sa!, metadata: { ...sa!.metadata, namespace: "bottle-missing" } }))
    expect(r._tag === "Left" && r.left.reason).toBe("NotFound")
    expect(r._tag === "Left" && r.left.message).toContain('namespaces "bottle-missing" not found')
    expect(fake.objects()).toEqual([])
  })

  it("a wrong token is Forbidden; a hanging LIST fails within the bound; a 500 is an error, never an empty list", async () => {
    const sa = refOf("v1", "ServiceAccount")!
    const denied = await run((k) => k.list(sa, "bottle-default", ""), { token: "wrong" })
    expect(denied._tag === "Left" && denied.left.reason).toBe("Forbidden")
    fake.faults.push({ method: "GET", path: /serviceaccounts/, fault: "hang" })
    const t = Date.now()
    const hung = await run((k) => k.list(sa, "bottle-default", ""), {}, "1 second")
    expect(hung._tag === "Left" && hung.left.reason).toBe("Timeout")
    expect(Date.now() - t).toBeLessThan(4000)
    fake.faults.splice(0, 1, { method: "GET", path: /configmaps/, fault: "500" })
    const broken = await run((k) => k.list(refOf("v1", "ConfigMap")!, "bottle-default", ""))
    expect(broken._tag === "Left" && broken.left.reason).toBe("Server")
  })

  it("an answer without end fails with BadResponse once it passes the client's 64 MiB limit, within the bound", async () => {
    fake.faults.push({ method: "GET", path: /secrets/, fault: "endless" })
    const t = Date.now()
    const r = await run((k) => k.list(refOf("v1", "Secret")!, "bottle-default", ""), {}, "60 seconds")
    expect(r._tag === "Left" && r.left.reason).toBe("BadResponse")
    expect(r._tag === "Left" && r.left.message).toContain("larger than 67108864 bytes")
    expect(Date.now() - t).toBeLessThan(60_000)
  }, 90_000)

  it("discovery tells whether agent-sandbox's API is served; a failed discovery is an error, not a no", async () => {
    const no = await run((k) => k.serves("agents.x-k8s.io/v1alpha1"))
    expect(no._tag === "Right" && no.right).toEqual([])
    fake.sandboxApi = true
    const yes = await run((k) => k.serves("agents.x-k8s.io/v1alpha1"))
    expect(yes._tag === "Right" && yes.right).toEqual(["Sandbox"])
    fake.faults.push({ method: "GET", path: /^\/apis\/agents/, fault: "500" })
    const failed = await run((k) => k.serves("agents.x-k8s.io/v1alpha1"))
    expect(failed._tag).toBe("Left")
  })

  it("an unreachable server is Unreachable, naming it", async () => {
    const r = await run((k) => k.list(refOf("v1", "Secret")!, "bottle-default", ""), { server: "http://127.0.0.1:1" })
    expect(r._tag === "Left" && r.left.reason).toBe("Unreachable")
    expect(r._tag === "Left" && r.left.message).toContain("http://127.0.0.1:1")
  })
})
