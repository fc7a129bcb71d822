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
import { spawn } from "node:child_process"
import { BIN, bottleAsync, engineAvailable, uniquePrefix } from "../support/docker.js"
import { startFakeKube, type FakeKube } from "../support/fakeKube.js"

const available = engineAvailable()
const TOKEN = "fake-token-for-tests"
/** This install's parent of set default, and its ApplySet id. */
const parentOf = (env: NodeJS.ProcessEnv) => `applyset.${env["BOTTLE_PREFIX"]}.default`
const idOf = (env: NodeJS.ProcessEnv) => applysetId(parentRef("default", "bottle-default", env["BOTTLE_PREFIX"]!))

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
      `ConfigMap/${parentOf(env)}`, "ConfigMap/kdemo-egress-config", "Deployment/kdemo-egress", "NetworkPolicy/kdemo-agent", "NetworkPolicy/kdemo-egress",
      "PersistentVolumeClaim/kdemo-state", "Service/kdemo-egress", "ServiceAccount/kdemo", "StatefulSet/kdemo-agent"
    ])
    const order = patches().map((p) => p.path.split("/").slice(-2).join("/"))
    expect(order[0]).toBe(`configmaps/${parentOf(env)}`)
    const firstWorkload = order.findIndex((p) => p.startsWith("deployments/") || p.startsWith("statefulsets/"))
    expect(order.lastIndexOf("networkpolicies/kdemo-egress")).toBeLessThan(firstWorkload)
    for (const p of patches()) {
      expect(p.contentType).toBe("application/apply-patch+yaml")
      expect(p.query.get("fieldManager")).toBe("bottle")
      expect(p.query.get("force")).toBeNull()
    }
    // Every member is of the set's ApplySet; the parent lists their kinds.
    const members = kube.objects().filter((o) => o.metadata.name !== parentOf(env))
    for (const o of members) expect(o.metadata.labels["applyset.kubernetes.io/part-of"]).toBe(idOf(env))
    const parent = kube.objects().find((o) => o.metadata.name === parentOf(env))!
    expect(parent.metadata.labels["applyset.kubernetes.io/id"]).toBe(idOf(env))
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

    kube.applyAs("kubectl", { apiVersion: "v1", kind: "ConfigMap", metadata: { name: parentOf(env), namespace: "bottle-default", labels: { "applyset.kubernetes.io/id": idOf(env), "dev.bottle.managed-by": "bottle", "dev.bottle.set": "default" }, annotations: { "applyset.kubernetes.io/tooling": "kubectl/v1.31" } } })
    const b = await run("apply", "-f", file("k2.yaml", spec("kforeign")))
    expect(b.status).toBe(1)
    expect(b.stdout).toContain("tooling 'kubectl/v1.31'")
    expect(objects()).toEqual([`ConfigMap/${parentOf(env)}`])
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
    expect(deletes.at(-1)).toBe(`configmaps/${parentOf(env)}`)
    expect(existsSync(join(home, "state", "kgone"))).toBe(false)
  }, 120_000)

  it("apply --prune removes a bottle the spec dropped and narrows the parent; preserve: true keeps its claim", async () => {
    // Only the dropped bottle has a Secret (its agent's token): the parent lists Secret until it goes.
    env = { ...env, KDROP_TOKEN: "t0ken" }
    const both = file("both.yaml", [spec("kkeep"), spec("kdrop", "  preserve: true\n  secrets: { TOKEN: { from: env:KDROP_TOKEN } }\n")].join("---\n"))
    expect((await run("apply", "-f", both)).status).toBe(0)
    const kinds = () => kube.objects().find((o) => o.metadata.name === parentOf(env))!.metadata.annotations["applyset.kubernetes.io/contains-group-kinds"] as string
    expect(kinds().split(",")).toContain("Secret")
    const r = await run("apply", "--prune", "--yes", "-f", file("one.yaml", spec("kkeep")))
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("preserve: true: only a person deletes this claim")
    expect(objects().filter((o) => o.includes("kdrop"))).toEqual(["PersistentVolumeClaim/kdrop-state"])
    expect(objects().filter((o) => o.includes("kkeep")).length).toBe(8)
    expect(existsSync(join(home, "state", "kdrop", ".preserve"))).toBe(true)
    expect(kinds().split(",")).not.toContain("Secret")
    // Narrowed after the deletions, never before them.
    const reqs = kube.requests.filter((q) => q.method === "DELETE" || q.path.endsWith(`/configmaps/${parentOf(env)}`))
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

  it("get lists a Kubernetes bottle; exec runs a command in its pod through the API with its exit code and stdin; logs reads the pod's log", async () => {
    expect((await run("apply", "-f", file("k.yaml", spec("kwork")))).status).toBe(0)
    const g = await run("get", "-o", "json")
    expect(g.status, g.stderr).toBe(0)
    expect(JSON.parse(g.stdout).bottles).toEqual([expect.objectContaining({ name: "kwork", backend: "kubernetes", state: "running", services: ["agent:running", "egress:running"] })])

    const e = await run("exec", "kwork", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    expect(e.status).toBe(3)
    expect(e.stdout).toBe("out\n")
    expect(e.stderr).toBe("err\n")
    expect(kube.execs.at(-1)).toMatchObject({ pod: "kwork-agent-0", container: "agent", command: ["sh", "-c", "echo out; echo err >&2; exit 3"], protocol: "v5.channel.k8s.io" })

    const child = spawn(process.execPath, [BIN, "exec", "-i", "kwork", "--", "cat"], { env: { ...process.env, NO_COLOR: "1", ...env }, stdio: ["pipe", "pipe", "pipe"] })
    let piped = ""
    child.stdout.on("data", (d) => (piped += d))
    child.stdin.end("through stdin\n")
    expect(await new Promise((resolve) => child.on("close", resolve))).toBe(0)
    expect(piped).toBe("through stdin\n")

    kube.podLogs.set("kwork-egress-5d9c7f-x2x7q", [
      "proxy starting",
      JSON.stringify({ time: "2026-11-24T01:00:00Z", method: "CONNECT", host: "evil.example", port: 443, verdict: "refused", rule: null, reason: "not in egress.allow" }),
      ""
    ].join("\n"))
    const l = await run("logs", "kwork", "--egress", "-o", "json")
    expect(l.status, l.stderr).toBe(0)
    expect(JSON.parse(l.stdout)).toEqual([expect.objectContaining({ host: "evil.example", verdict: "refused" })])
    const missing = await run("exec", "nobody", "--", "true")
    expect(missing.status).toBe(2)
    expect(missing.stderr).toContain("no bottle named 'nobody'")
  }, 120_000)

  it("two installs in one namespace: one's apply --prune and reconcile --prune never delete the other's bottles, and a bottle of the same name is refused, not taken over", async () => {
    const other = { ...env, BOTTLE_PREFIX: uniquePrefix("k8o"), BOTTLE_HOME: mkdtempSync(join(tmpdir(), "bottle-home-")) }
    expect((await bottleAsync(other, "apply", "-f", file("theirs.yaml", [spec("theirs"), spec("shared")].join("---\n")))).status).toBe(0)
    const theirs = objects()
    const uids = () => kube.objects().filter((o) => o.metadata.labels?.["dev.bottle.bottle"] === "shared").map((o) => o.metadata.uid).sort()
    const before = uids()

    const mine = await run("apply", "--prune", "--yes", "-f", file("mine.yaml", spec("mine")))
    expect(mine.status, mine.stdout + mine.stderr).toBe(0)
    expect(objects().filter((o) => theirs.includes(o))).toEqual(theirs)
    const clash = await run("apply", "-f", file("shared.yaml", [spec("mine"), spec("shared")].join("---\n")))
    expect(clash.status).toBe(1)
    expect(clash.stdout + clash.stderr).toContain("exists and is not bottle's")
    expect(uids()).toEqual(before)
    expect(kube.objects().filter((o) => o.metadata.labels?.["dev.bottle.bottle"] === "shared").every((o) => o.metadata.labels["applyset.kubernetes.io/part-of"] === idOf(other))).toBe(true)

    const r = await run("reconcile", "--prune", "--yes")
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(objects()).toEqual(theirs)
    expect(uids()).toEqual(before)
  }, 180_000)

  it("a bottle moved to another namespace is taken down in the old one first; its state dir says the new one only after", async () => {
    kube.namespaces.add("team-b")
    expect((await run("apply", "-f", file("k.yaml", spec("kmove")))).status).toBe(0)
    kube.requests.length = 0
    const r = await run("apply", "--yes", "-f", file("k.yaml", spec("kmove", "  namespace: team-b\n")))
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(kube.objects().filter((o) => o.metadata.labels?.["dev.bottle.bottle"] === "kmove").map((o) => o.metadata.namespace)).toEqual(Array(8).fill("team-b"))
    const firstPatch = kube.requests.findIndex((q) => q.method === "PATCH" && q.path.includes("/team-b/"))
    const lastDelete = kube.requests.map((q) => q.method).lastIndexOf("DELETE")
    expect(lastDelete).toBeGreaterThanOrEqual(0)
    expect(lastDelete).toBeLessThan(firstPatch)
    expect(JSON.parse(readFileSync(join(home, "state", "kmove", "metadata.json"), "utf8")).namespace).toBe("team-b")
  }, 120_000)

  it("runs the agent as an agent-sandbox Sandbox once discovery finds that API, its StatefulSet gone first", async () => {
    const f = file("k.yaml", spec("ksbx"))
    expect((await run("apply", "-f", f)).status).toBe(0)
    kube.sandboxApi = true
    kube.requests.length = 0
    const r = await run("apply", "--yes", "-f", f)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(objects().filter((o) => o.endsWith("-agent") && !o.startsWith("NetworkPolicy"))).toEqual(["Sandbox/ksbx-agent"])
    const del = kube.requests.findIndex((q) => q.method === "DELETE" && q.path.endsWith("/statefulsets/ksbx-agent"))
    const put = kube.requests.findIndex((q) => q.method === "PATCH" && q.path.includes("/sandboxes/ksbx-agent"))
    expect(del).toBeGreaterThanOrEqual(0)
    expect(del).toBeLessThan(put)
    const sbx = kube.objects().find((o) => o.kind === "Sandbox")!
    expect(sbx.apiVersion).toBe("agents.x-k8s.io/v1alpha1")
    expect(sbx.spec.podTemplate.spec.containers[0].securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } })
    expect(sbx.spec.podTemplate.spec.automountServiceAccountToken).toBe(false)
    const e = await run("exec", "ksbx", "--", "true")
    expect(e.status, e.stderr).toBe(0)
    expect(kube.execs.at(-1)!.pod).toBe("ksbx-agent")
    expect((await run("diff", "-f", f)).status).toBe(0)
  }, 120_000)

  it("verify checks the fence through the API, then probes from a pod fenced as the agent, warns that enforcement is the network plugin's, and fails on a widened policy", async () => {
    expect((await run("apply", "-f", file("k.yaml", spec("kver")))).status).toBe(0)
    // The FAKE cluster cannot run a pod: here it gives the probe pod's log, as a fenced pod would print it.
    const ran: Array<Record<string, any>> = []
    kube.runPod = (pod) => {
      ran.push(pod)
      return `${JSON.stringify({ properties: [{ name: "proxy answers", ok: true, detail: "kver-egress:8080: HTTP/1.1 403" }, { name: "public addresses unreachable", ok: true, detail: "no answer" }] })}\n`
    }
    const ok = await run("verify")
    expect(ok.status, ok.stdout + ok.stderr).toBe(0)
    expect(ok.stdout).toContain("kver: fence holds")
    expect(ok.stdout).toContain("agent fenced by NetworkPolicy")
    expect(ok.stdout).toContain("public addresses unreachable")
    expect(ok.stderr).toContain("network plugin")
    expect(JSON.parse(readFileSync(join(home, "state", "kver", "verify.json"), "utf8")).ok).toBe(true)
    // The probe ran as the agent's fence holds it, hardened, and is gone.
    expect(ran).toHaveLength(1)
    expect(ran[0]!.metadata.labels).toMatchObject({ "dev.bottle.bottle": "kver", "dev.bottle.role": "probe", "applyset.kubernetes.io/part-of": idOf(env) })
    expect(ran[0]!.spec).toMatchObject({ automountServiceAccountToken: false, restartPolicy: "Never", securityContext: { runAsNonRoot: true, runAsUser: 65534 } })
    expect(ran[0]!.spec.containers[0].command.slice(0, 2)).toEqual(["python3", "-c"])
    const policy = kube.objects().find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "kver-agent")!
    expect(policy.spec.podSelector.matchExpressions).toEqual([{ key: "dev.bottle.role", operator: "In", values: ["agent", "probe"] }])
    expect(kube.requests.filter((q) => q.method === "DELETE" && q.path.includes("/pods/kver-probe-"))).toHaveLength(1)

    // Run where nothing fences it (the test host), the same probe finds its way out: a broken fence, said so.
    kube.runPod = undefined
    const open = await run("verify", "kver")
    expect(open.status, open.stdout + open.stderr).toBe(1)
    expect(open.stdout).toContain("FENCE BROKEN")
    expect(open.stdout).toMatch(/FAIL (proxy answers|proxy refuses a host not allowed|public addresses unreachable|host and gateways unreachable|no outside DNS)/)

    // Policies add up: another one in the namespace that selects every pod and lets them out opens the agent's fence.
    kube.runPod = (pod) => { ran.push(pod); return `${JSON.stringify({ properties: [{ name: "proxy answers", ok: true, detail: "fake" }] })}\n` }
    kube.applyAs("kubectl", { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "allow-all-egress", namespace: "bottle-default" }, spec: { podSelector: {}, policyTypes: ["Egress"], egress: [{}] } })
    const added = await run("verify", "kver")
    expect(added.status).toBe(1)
    expect(added.stdout).toContain("NetworkPolicy allow-all-egress also selects the agent's pod and lets it out")
    kube.runPod = undefined

    // Someone lets the agent out, around its proxy: the API check fails, and no probe is run in an open fence.
    kube.applyAs("kubectl-edit", { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "kver-agent", namespace: "bottle-default" }, spec: { egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }] }] } }, true)
    const broken = await run("verify", "kver")
    expect(broken.status).toBe(1)
    expect(broken.stdout).toContain("FENCE BROKEN")
    expect(broken.stdout).toContain("lets it reach")
    expect(broken.stdout).toContain("not probed: its fence is not in place")
  }, 120_000)

  it("exec attaches only to the workload's own pod, never to one someone labelled as the agent", async () => {
    expect((await run("apply", "-f", file("k.yaml", spec("kimp")))).status).toBe(0)
    // A pod that sorts first and carries the agent's labels, running (the fake runs its command on the test host).
    expect(kube.applyAs("intruder", { apiVersion: "v1", kind: "Pod", metadata: { name: "a-impostor", namespace: "bottle-default", labels: { "dev.bottle.bottle": "kimp", "dev.bottle.role": "agent" } }, spec: { containers: [{ name: "agent", image: "x", command: ["sleep", "20"] }] } }).status).toBe(201)
    const e = await run("exec", "kimp", "--", "true")
    expect(e.status, e.stderr).toBe(0)
    expect(kube.execs.at(-1)!.pod).toBe("kimp-agent-0")
    const l = await run("logs", "kimp")
    expect(l.status, l.stderr).toBe(0)
    expect(kube.requests.filter((q) => q.path.endsWith("/log")).map((q) => q.path.split("/").at(-2))).toEqual(["kimp-agent-0"])
  }, 120_000)
})
