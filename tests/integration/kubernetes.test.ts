/**
 * The kubernetes backend end to end, through the real CLI, against a FAKE
 * Kubernetes API server (tests/support/fakeKube.ts: no real API server can
 * run on the CI machine). The Docker Engine is the real one: every command
 * observes it too.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeEach, describe, expect, it } from "vitest"
import { applysetId, parentRef } from "../../src/resources/realiseKubernetes.js"
import { bottleAsync, engineAvailable, uniquePrefix } from "../support/docker.js"
import { startFakeKube, type FakeKube } from "../support/fakeKube.js"

const available = engineAvailable()
const TOKEN = "fake-token-for-tests"
const ID = applysetId(parentRef("default", "bottle-default"))

const spec = (name: string, extra = "") =>
  `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${name} }\nspec:\n  backend: kubernetes\n  image: example.invalid/agent:1\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 512m }\n${extra}`

describe.skipIf(!available)("kubernetes bottles (against a fake API server)", () => {
  let kube: FakeKube
  let env: NodeJS.ProcessEnv
  let dir: string
  let home: string
  const file = (name: string, text: string) => {
    const f = join(dir, name)
    writeFileSync(f, text)
    return f
  }
  const run = (...args: ReadonlyArray<string>) => bottleAsync(env, ...args)
  const objects = () => kube.objects().map((o) => `${o.kind}/${o.metadata.name}`).sort()
  const patches = () => kube.requests.filter((r) => r.method === "PATCH")
  const lists = () => kube.requests.filter((r) => r.method === "GET" && r.query.has("labelSelector"))

  beforeEach(async () => {
    await kube?.close()
    kube = await startFakeKube({ token: TOKEN })
    home = mkdtempSync(join(tmpdir(), "bottle-home-"))
    dir = mkdtempSync(join(tmpdir(), "bottle-specs-"))
    const kubeconfig = join(home, "kubeconfig")
    writeFileSync(kubeconfig, [
      "apiVersion: v1", "kind: Config", "current-context: fake",
      "clusters: [{ name: fake, cluster: { server: " + JSON.stringify(kube.url) + " } }]",
      "users: [{ name: me, user: { token: " + TOKEN + " } }]",
      "contexts: [{ name: fake, context: { cluster: fake, user: me } }]", ""
    ].join("\n"))
    env = { BOTTLE_PREFIX: uniquePrefix("k8s"), BOTTLE_HOME: home, KUBECONFIG: kubeconfig, BOTTLE_KUBE_TIMEOUT: "5" }
  })
  afterAll(async () => { await kube?.close() })

  it("apply makes the parent first, each bottle's fence before what runs, by server-side apply without force; a second diff is in sync", async () => {
    const f = file("k.yaml", spec("kdemo"))
    const r = await run("apply", "-f", f)
    expect(r.stderr + r.stdout).toContain("ApplyObject")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(objects()).toEqual([
      "ConfigMap/bottle-default", "ConfigMap/kdemo-egress-config", "Deployment/kdemo-egress", "NetworkPolicy/kdemo-agent", "NetworkPolicy/kdemo-egress",
      "PersistentVolumeClaim/kdemo-state", "Service/kdemo-egress", "ServiceAccount/kdemo", "StatefulSet/kdemo-agent"
    ])
    const order = patches().map((p) => p.path.split("/").slice(-2).join("/"))
    expect(order[0]).toBe("configmaps/bottle-default")
    const firstWorkload = order.findIndex((p) => p.startsWith("deployments/") || p.startsWith("statefulsets/"))
    expect(order.lastIndexOf("networkpolicies/kdemo-egress")).toBeLessThan(firstWorkload)
    for (const p of patches()) {
      expect(p.contentType).toBe("application/apply-patch+yaml")
      expect(p.query.get("fieldManager")).toBe("bottle")
      expect(p.query.get("force")).toBeNull()
    }
    // Every member is of the set's ApplySet; the parent lists their kinds.
    const members = kube.objects().filter((o) => o.metadata.name !== "bottle-default")
    for (const o of members) expect(o.metadata.labels["applyset.kubernetes.io/part-of"]).toBe(ID)
    const parent = kube.objects().find((o) => o.metadata.name === "bottle-default")!
    expect(parent.metadata.labels["applyset.kubernetes.io/id"]).toBe(ID)
    expect(parent.metadata.annotations["applyset.kubernetes.io/tooling"]).toMatch(/^bottle\//)
    expect(parent.metadata.annotations["applyset.kubernetes.io/contains-group-kinds"]).toBe(
      "ConfigMap,Deployment.apps,NetworkPolicy.networking.k8s.io,PersistentVolumeClaim,Service,ServiceAccount,StatefulSet.apps")
    // The state dir records where the bottle is, before anything was applied.
    const meta = JSON.parse(readFileSync(join(home, "state", "kdemo", "metadata.json"), "utf8"))
    expect(meta).toMatchObject({ backend: "kubernetes", namespace: "bottle-default", set: "default" })

    const before = patches().length
    const d = await run("diff", "-f", f)
    expect(d.status, d.stdout + d.stderr).toBe(0)
    expect(patches().length).toBe(before)
  }, 120_000)

  it("observes with the same number of LIST calls for one bottle as for three", async () => {
    const one = file("one.yaml", spec("k1"))
    expect((await run("apply", "-f", one)).status).toBe(0)
    kube.requests.length = 0
    expect((await run("diff", "-f", one)).status).toBe(0)
    const forOne = lists().length
    const three = file("three.yaml", [spec("k1"), spec("k2"), spec("k3")].join("---\n"))
    expect((await run("apply", "-f", three)).status).toBe(0)
    kube.requests.length = 0
    expect((await run("diff", "-f", three)).status).toBe(0)
    expect(lists().length).toBe(forOne)
    expect(forOne).toBeGreaterThan(0)
  }, 120_000)

  it("sees drift another tool made, and a conflicting apply fails naming that field manager (never forced)", async () => {
    const f = file("k.yaml", spec("kdrift"))
    expect((await run("apply", "-f", f)).status).toBe(0)
    const sts = kube.objects().find((o) => o.kind === "StatefulSet")!
    const edited = structuredClone(sts)
    delete edited.metadata.managedFields
    edited.spec.template.spec.containers[0].securityContext.privileged = true
    expect(kube.applyAs("kubectl-edit", { apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name: sts.metadata.name, namespace: "bottle-default" }, spec: { template: { spec: { containers: edited.spec.template.spec.containers } } } }, true).status).toBe(200)
    const d = await run("diff", "-f", f)
    expect(d.status).toBe(1)
    expect(d.stdout).toMatch(/StatefulSet\/kdrift-agent.*drift: spec\.template\.spec\.containers\[0\]\.securityContext\.privileged is true \(want false\)/)
    const a = await run("apply", "-f", f)
    expect(a.status).toBe(1)
    expect(a.stdout + a.stderr).toContain("'kubectl-edit'")
    expect(kube.objects().find((o) => o.kind === "StatefulSet")!.spec.template.spec.containers[0].securityContext.privileged).toBe(true)
  }, 120_000)

  it("never takes over an object of that name it did not make", async () => {
    kube.applyAs("kubectl", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "kother", namespace: "bottle-default" }, automountServiceAccountToken: false })
    const a = await run("apply", "-f", file("k.yaml", spec("kother")))
    expect(a.status).toBe(1)
    expect(a.stdout + a.stderr).toContain("exists and is not bottle's")
    const sa = kube.objects().find((o) => o.kind === "ServiceAccount")!
    expect(sa.metadata.labels).toBeUndefined()
    // Nothing that runs was made without its account.
    expect(objects().filter((o) => o.startsWith("StatefulSet/"))).toEqual([])
  }, 120_000)

  it("refuses a namespace that does not exist (bottle never makes one) and a parent of another tool", async () => {
    const a = await run("apply", "-f", file("k.yaml", spec("kns", "  namespace: team-x\n")))
    expect(a.status).toBe(1)
    expect(a.stdout).toContain("namespace team-x does not exist in context fake")
    expect(kube.objects()).toEqual([])

    kube.applyAs("kubectl", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "bottle-default", namespace: "bottle-default", labels: { "applyset.kubernetes.io/id": ID, "dev.bottle.managed-by": "bottle", "dev.bottle.set": "default" }, annotations: { "applyset.kubernetes.io/tooling": "kubectl/v1.31" } } })
    const b = await run("apply", "-f", file("k2.yaml", spec("kforeign")))
    expect(b.status).toBe(1)
    expect(b.stdout).toContain("tooling 'kubectl/v1.31'")
    expect(objects()).toEqual(["ConfigMap/bottle-default"])
  }, 120_000)

  it("a bad --context is bad input: exit 2, nothing changed", async () => {
    const a = await run("apply", "--context", "nowhere", "-f", file("k.yaml", spec("kctx")))
    expect(a.status).toBe(2)
    expect(a.stderr).toContain("no context 'nowhere'")
    expect(kube.requests).toEqual([])
    expect(existsSync(join(home, "state", "kctx"))).toBe(false)
  }, 60_000)

  it("reconcile --prune deletes every member by its UID, workloads first and the fence last, then the parent and the state dir", async () => {
    expect((await run("apply", "-f", file("k.yaml", spec("kgone")))).status).toBe(0)
    kube.requests.length = 0
    const r = await run("reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(kube.objects()).toEqual([])
    const deletes = kube.requests.filter((q) => q.method === "DELETE").map((q) => q.path.split("/").slice(-2).join("/"))
    expect(deletes.indexOf("statefulsets/kgone-agent")).toBeLessThan(deletes.indexOf("networkpolicies/kgone-agent"))
    expect(deletes.indexOf("deployments/kgone-egress")).toBeLessThan(deletes.indexOf("networkpolicies/kgone-egress"))
    expect(deletes.at(-1)).toBe("configmaps/bottle-default")
    expect(existsSync(join(home, "state", "kgone"))).toBe(false)
  }, 120_000)

  it("apply --prune removes a bottle the spec dropped and narrows the parent; preserve: true keeps its claim", async () => {
    // Only the dropped bottle has a Secret (its agent's token): the parent lists Secret until it goes.
    env = { ...env, KDROP_TOKEN: "t0ken" }
    const both = file("both.yaml", [spec("kkeep"), spec("kdrop", "  preserve: true\n  secrets: { TOKEN: { from: env:KDROP_TOKEN } }\n")].join("---\n"))
    expect((await run("apply", "-f", both)).status).toBe(0)
    const kinds = () => kube.objects().find((o) => o.metadata.name === "bottle-default")!.metadata.annotations["applyset.kubernetes.io/contains-group-kinds"] as string
    expect(kinds().split(",")).toContain("Secret")
    const r = await run("apply", "--prune", "--yes", "-f", file("one.yaml", spec("kkeep")))
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("preserve: true: only a person deletes this claim")
    expect(objects().filter((o) => o.includes("kdrop"))).toEqual(["PersistentVolumeClaim/kdrop-state"])
    expect(objects().filter((o) => o.includes("kkeep")).length).toBe(8)
    expect(existsSync(join(home, "state", "kdrop", ".preserve"))).toBe(true)
    expect(kinds().split(",")).not.toContain("Secret")
    // Narrowed after the deletions, never before them.
    const reqs = kube.requests.filter((q) => q.method === "DELETE" || q.path.endsWith("/configmaps/bottle-default"))
    expect(reqs.at(-1)!.method).toBe("PATCH")
  }, 120_000)

  it("a failed observation deletes nothing on the cluster and keeps every state dir", async () => {
    expect((await run("apply", "-f", file("k.yaml", spec("kblind")))).status).toBe(0)
    const count = kube.objects().length
    kube.faults.push({ method: "GET", path: /statefulsets/, fault: "500" })
    const r = await run("reconcile", "--prune", "--yes")
    expect(r.status).toBe(1)
    expect(r.stdout).toContain("observation incomplete: kubernetes (context fake) failed")
    expect(kube.objects().length).toBe(count)
    expect(kube.requests.filter((q) => q.method === "DELETE")).toEqual([])
    expect(existsSync(join(home, "state", "kblind", "metadata.json"))).toBe(true)
  }, 120_000)
})
