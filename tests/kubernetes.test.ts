/**
 * What a bottle means on Kubernetes (src/resources/realiseKubernetes.ts):
 * kubectl's ApplySet id, every object valid against Kubernetes' own schemas
 * (kubernetes-models), the fence applied before anything runs, secrets kept
 * out of every pod spec and annotation, the docker backend's hardening, and
 * a golden rendering; and the backend's planning over a snapshot (pure).
 */
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import { stringify } from "yaml"
import { describe, expect, it } from "vitest"
import type { DesiredSecret } from "../src/resources/desired.js"
import { Bottle as BL } from "../src/resources/labels.js"
import {
  Applyset, applysetId, applysetParent, CONFIG_HASH, groupKindOf, groupKinds, kubeProbePod, NON_PUBLIC_V4, parentRef, realiseKubernetes, ROLE_LABEL,
  type KubernetesContext, type Manifest
} from "../src/resources/realiseKubernetes.js"
import { objectDrift, subsetDrift } from "../src/reconcilers/backends/kubernetes.js"
import { kubeFence, selectorMatches } from "../src/reconcilers/kubeVerify.js"
import { plan } from "../src/reconcilers/plan.js"
import type { ObservedObject } from "../src/resources/observed.js"
import { bottle, emptyWorld, observed, options, ours } from "./support/fixtures.js"

const require = createRequire(import.meta.url)

const ctx: KubernetesContext = { namespace: "bottle-default", prefix: "claude-bottle", tooling: "bottle/0.1.0", egressImage: undefined, proxyUser: "65534:65534", stateSize: "5Gi" }
const certPem = "-----BEGIN CERTIFICATE-----\nTESTCERT\n-----END CERTIFICATE-----\n"
const hostCas = "-----BEGIN CERTIFICATE-----\nHOSTROOT\n-----END CERTIFICATE-----\n"
const ca = { certPem, keyPem: "-----BEGIN PRIVATE KEY-----\nTESTKEY\n-----END PRIVATE KEY-----\n", bundlePem: `${hostCas}${certPem}` }

const secret = (name: string, value: string, inject?: DesiredSecret["inject"]): DesiredSecret =>
  ({ name, value, digest: createHash("sha256").update(`test-key:${value}`).digest("hex"), inject })

const full = bottle("dev", {
  env: { EDITOR: "vi" },
  prompt: "Fix the tests.",
  user: "1000",
  egressAllow: ["api.anthropic.com", "*.github.com", "registry.example.org:8443"],
  secrets: [
    secret("ANTHROPIC_API_KEY", "sk-ant-REAL-VALUE-1", { host: "api.anthropic.com", header: "x-api-key", format: "{value}" }),
    secret("GH_TOKEN", "ghp_PLAIN-VALUE-2")
  ],
  resources: { cpus: 2, memoryBytes: 2 * 1024 ** 3, pids: 512 }
})

/** Kubernetes' schema for a manifest's kind, from kubernetes-models. */
const validate = (m: Manifest) => {
  const group = m.apiVersion.includes("/") ? m.apiVersion : `v1`
  const Model = require(`kubernetes-models/${group}/${m.kind}`)[m.kind] as new (o: unknown) => { validate(): void }
  new Model(m).validate()
}

/**
 * agent-sandbox's Sandbox (agents.x-k8s.io/v1alpha1, as its API reference gives it): spec.podTemplate
 * (required: a PodSpec, validated by Kubernetes' own Pod schema; metadata with labels and annotations only),
 * replicas 0 or 1, and no field that API does not have.
 */
const validateSandbox = (m: Manifest) => {
  const spec = m["spec"] as Record<string, any>
  const allowed = ["podTemplate", "volumeClaimTemplates", "shutdownTime", "shutdownPolicy", "replicas", "service"]
  const extra = Object.keys(spec).filter((k) => !allowed.includes(k))
  if (extra.length > 0) throw new Error(`Sandbox.spec has no ${extra.join(", ")}`)
  if (spec.replicas !== undefined && ![0, 1].includes(spec.replicas)) throw new Error("Sandbox.spec.replicas is 0 or 1")
  if (spec.podTemplate?.spec === undefined) throw new Error("Sandbox.spec.podTemplate.spec is required")
  const metaExtra = Object.keys(spec.podTemplate.metadata ?? {}).filter((k) => !["labels", "annotations"].includes(k))
  if (metaExtra.length > 0) throw new Error(`Sandbox.spec.podTemplate.metadata has no ${metaExtra.join(", ")}`)
  validate({ apiVersion: "v1", kind: "Pod", metadata: { ...m.metadata, name: m.metadata.name }, spec: spec.podTemplate.spec } as Manifest)
}

const byKind = (ms: ReadonlyArray<Manifest>, kind: string, name?: string) =>
  ms.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name))

const podTemplates = (ms: ReadonlyArray<Manifest>) =>
  ms.filter((m) => m.kind === "Deployment" || m.kind === "StatefulSet").map((m) => (m.spec as { template: { metadata: { annotations: Record<string, string>; labels: Record<string, string> }; spec: any } }).template)

describe("the ApplySet", () => {
  it("has kubectl's id for kubectl's own test vector (Secret my-set in namespace test)", () => {
    expect(applysetId({ name: "my-set", namespace: "test", kind: "Secret", group: "" })).toBe("applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1")
  })

  it("parent: a ConfigMap per set, labelled with its id, naming bottle as its tooling and the kinds it holds", () => {
    const { manifests } = realiseKubernetes(full, { ...ctx, ca })
    const parent = applysetParent("default", ctx, manifests.map(groupKindOf))
    validate(parent)
    const id = applysetId(parentRef("default", "bottle-default", "claude-bottle"))
    expect(parent.metadata.labels[Applyset.id]).toBe(id)
    expect(parent.metadata.annotations[Applyset.tooling]).toBe("bottle/0.1.0")
    expect(parent.metadata.annotations[Applyset.containsGroupKinds]).toBe("ConfigMap,Deployment.apps,NetworkPolicy.networking.k8s.io,PersistentVolumeClaim,Secret,Service,ServiceAccount,StatefulSet.apps")
    for (const m of manifests) expect(m.metadata.labels[Applyset.partOf], `${m.kind}/${m.metadata.name}`).toBe(id)
    // Another set has another parent, and so another id.
    expect(applysetId(parentRef("other", "bottle-default", "claude-bottle"))).not.toBe(id)
  })

  it("lists group kinds as kubectl does: core kinds bare, the rest Kind.group, sorted, once each", () => {
    expect(groupKinds([{ apiVersion: "apps/v1", kind: "Deployment" }, { apiVersion: "v1", kind: "Secret" }, { apiVersion: "apps/v1", kind: "Deployment" }].map(groupKindOf))).toBe("Deployment.apps,Secret")
  })
})

describe("a bottle on Kubernetes", () => {
  const { manifests, problems } = realiseKubernetes(full, { ...ctx, ca })

  it("is made of objects Kubernetes' own schemas accept, each in the set's namespace with bottle's labels", () => {
    expect(problems).toEqual([])
    for (const m of manifests) {
      expect(() => validate(m), `${m.kind}/${m.metadata.name}`).not.toThrow()
      expect(m.metadata.namespace).toBe("bottle-default")
      expect(m.metadata.labels[BL.bottle]).toBe("dev")
      // Label values are limited to 63 characters: hashes ride in annotations.
      for (const v of Object.values(m.metadata.labels)) expect(v.length).toBeLessThanOrEqual(63)
      expect(m.metadata.annotations[BL.specHash]).toMatch(/^[0-9a-f]{16}$/)
    }
  })

  it("applies the fence before anything that runs: both NetworkPolicies come before the proxy and the agent", () => {
    const kinds = manifests.map((m) => m.kind)
    const lastPolicy = kinds.lastIndexOf("NetworkPolicy")
    expect(lastPolicy).toBeGreaterThan(0)
    expect(kinds.indexOf("Deployment")).toBeGreaterThan(lastPolicy)
    expect(kinds.indexOf("StatefulSet")).toBeGreaterThan(lastPolicy)
    expect(kinds.at(-1)).toBe("StatefulSet")
  })

  it("lets the agent reach its proxy only (not the cluster's resolver, which forwards outside names), and nothing reach the agent", () => {
    const [policy] = byKind(manifests, "NetworkPolicy", "dev-agent")
    const spec = policy!.spec as any
    // The agent's pods, and verify's probe (fenced exactly as the agent is).
    expect(spec.podSelector).toEqual({ matchLabels: { [BL.bottle]: "dev" }, matchExpressions: [{ key: ROLE_LABEL, operator: "In", values: ["agent", "probe"] }] })
    expect(spec.policyTypes).toEqual(["Ingress", "Egress"])
    expect(spec.ingress).toEqual([])
    expect(spec.egress).toEqual([{ to: [{ podSelector: { matchLabels: { [BL.bottle]: "dev", [ROLE_LABEL]: "egress" } } }], ports: [{ protocol: "TCP", port: 8888 }] }])
  })

  it("lets the proxy be reached by its agent only, and reach only public addresses on the allowed ports", () => {
    const spec = byKind(manifests, "NetworkPolicy", "dev-egress")[0]!.spec as any
    expect(spec.ingress).toEqual([{ from: [{ podSelector: { matchLabels: { [BL.bottle]: "dev" }, matchExpressions: [{ key: ROLE_LABEL, operator: "In", values: ["agent", "probe"] }] } }], ports: [{ protocol: "TCP", port: 8888 }] }])
    expect(spec.egress[0].to).toEqual([{ ipBlock: { cidr: "0.0.0.0/0", except: NON_PUBLIC_V4 } }])
    expect(spec.egress[0].ports.map((p: { port: number }) => p.port)).toEqual([80, 443, 8443])
    expect(NON_PUBLIC_V4).toEqual(expect.arrayContaining(["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]))
  })

  it("never writes a secret's value anywhere but the Secret that holds it: not in a pod spec, a ConfigMap or an annotation", () => {
    for (const m of manifests) {
      const text = JSON.stringify(m)
      const holds = (v: string) => text.includes(v)
      if (m.kind === "Secret" && m.metadata.name === "dev-agent-secrets") {
        expect(holds("ghp_PLAIN-VALUE-2")).toBe(true)
        expect(holds("sk-ant-REAL-VALUE-1")).toBe(false)
      } else if (m.kind === "Secret" && m.metadata.name === "dev-egress-secrets") {
        expect(holds("sk-ant-REAL-VALUE-1")).toBe(true)
        expect(holds("TESTKEY")).toBe(true)
        expect(holds("ghp_PLAIN-VALUE-2")).toBe(false)
      } else {
        expect(holds("sk-ant-REAL-VALUE-1"), `${m.kind}/${m.metadata.name}`).toBe(false)
        expect(holds("ghp_PLAIN-VALUE-2"), `${m.kind}/${m.metadata.name}`).toBe(false)
        expect(holds("TESTKEY"), `${m.kind}/${m.metadata.name}`).toBe(false)
      }
    }
    const agent = podTemplates(byKind(manifests, "StatefulSet"))[0]!.spec.containers[0]
    const env = Object.fromEntries(agent.env.map((e: { name: string }) => [e.name, e]))
    expect(env.ANTHROPIC_API_KEY.value).toBe("bottle-placeholder-anthropic_api_key")
    expect(env.GH_TOKEN).toEqual({ name: "GH_TOKEN", valueFrom: { secretKeyRef: { name: "dev-agent-secrets", key: "GH_TOKEN" } } })
    // The proxy's Secret (the real key, the CA's private key) is mounted by the proxy's pod alone.
    const mounts = (t: ReturnType<typeof podTemplates>[number]) => JSON.stringify(t.spec.volumes)
    const [proxyPod] = podTemplates(byKind(manifests, "Deployment"))
    expect(mounts(proxyPod!)).toContain("dev-egress-secrets")
    expect(mounts(podTemplates(byKind(manifests, "StatefulSet"))[0]!)).not.toContain("dev-egress-secrets")
  })

  it("hardens every pod as the docker backend does: non-root, no privilege escalation, no capabilities, no token, limits", () => {
    for (const t of podTemplates(manifests)) {
      expect(t.spec.automountServiceAccountToken).toBe(false)
      // Only the agent gets the Services' variables: its proxy's address, without DNS.
      expect(t.spec.enableServiceLinks).toBe(t.metadata.labels[ROLE_LABEL] === "agent")
      expect(t.spec.securityContext.runAsNonRoot).toBe(true)
      expect(t.spec.securityContext.seccompProfile).toEqual({ type: "RuntimeDefault" })
      for (const c of t.spec.containers) {
        expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ["ALL"] } })
        expect(c.resources.limits.memory).toBeDefined()
      }
    }
    expect(byKind(manifests, "ServiceAccount")[0]!.automountServiceAccountToken).toBe(false)
    const [proxy, agent] = podTemplates(manifests)
    expect(proxy!.spec.containers[0].securityContext.readOnlyRootFilesystem).toBe(true)
    expect(proxy!.spec.securityContext.runAsUser).toBe(65534)
    expect(agent!.spec.securityContext.runAsUser).toBe(1000)
    expect(agent!.spec.containers[0].resources.limits).toEqual({ memory: "2048Mi", cpu: "2" })
  })

  it("makes the agent trust its proxy's CA as on docker: Node adds the CA, every other client keeps the public roots too", () => {
    const agent = podTemplates(byKind(manifests, "StatefulSet"))[0]!.spec.containers[0]
    const env = Object.fromEntries(agent.env.map((e: { name: string; value?: string }) => [e.name, e.value]))
    expect(env.NODE_EXTRA_CA_CERTS).toBe("/bottle/ca.pem")
    for (const k of ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"]) expect(env[k], k).toBe("/bottle/ca-bundle.pem")
    const files = byKind(manifests, "ConfigMap", "dev-agent-files")[0]!.data as Record<string, string>
    expect(files["ca.pem"]).toBe(certPem)
    expect(files["ca-bundle.pem"]).toContain("HOSTROOT")
    expect(files["ca-bundle.pem"]).toContain("TESTCERT")
  })

  it("points the agent at its proxy last, so the spec's env cannot route around it", () => {
    const b = bottle("dev", { env: { HTTPS_PROXY: "http://evil:1" } })
    const agent = podTemplates(realiseKubernetes(b, ctx).manifests.filter((m) => m.kind === "StatefulSet"))[0]!.spec.containers[0]
    const last = agent.env.filter((e: { name: string }) => e.name === "HTTPS_PROXY").at(-1)
    // By the address Kubernetes gives its proxy's Service (the agent has no DNS).
    expect(last.value).toBe("http://$(DEV_EGRESS_SERVICE_HOST):8888")
    const names = agent.env.map((e: { name: string }) => e.name)
    expect(names.lastIndexOf("HTTPS_PROXY")).toBeGreaterThan(names.indexOf("HTTPS_PROXY"))
  })

  it("rolls a pod when what it reads changes: a new secret value, a new allow list", () => {
    const hashes = (b: typeof full) => podTemplates(realiseKubernetes(b, { ...ctx, ca }).manifests).map((t) => t.metadata.annotations[CONFIG_HASH])
    const [proxy0, agent0] = hashes(full)
    const [, agent1] = hashes({ ...full, secrets: [full.secrets[0]!, secret("GH_TOKEN", "ghp_ROTATED-VALUE")] })
    expect(agent1).not.toBe(agent0)
    const [proxy2] = hashes({ ...full, egressAllow: [...full.egressAllow, "pypi.org"] })
    expect(proxy2).not.toBe(proxy0)
    const [proxy3] = hashes({ ...full, secrets: [secret("ANTHROPIC_API_KEY", "sk-ant-ROTATED", full.secrets[0]!.inject), full.secrets[1]!] })
    expect(proxy3).not.toBe(proxy0)
  })

  it("without an allow list has no proxy and no way out: the agent's policy allows no egress at all", () => {
    const r = realiseKubernetes(bottle("shut", { egressAllow: [] }), ctx)
    expect(r.manifests.map((m) => m.kind)).toEqual(["ServiceAccount", "NetworkPolicy", "PersistentVolumeClaim", "StatefulSet"])
    expect((r.manifests[1]!.spec as { egress: unknown }).egress).toEqual([])
    const env = JSON.stringify(r.manifests.at(-1))
    expect(env).not.toContain("HTTPS_PROXY")
    for (const m of r.manifests) expect(() => validate(m)).not.toThrow()
  })

  it("refuses, naming each, what has no meaning on a cluster yet", () => {
    const r = realiseKubernetes(bottle("x", {
      workspace: "/home/u/repo",
      user: "agent",
      git: { remotes: [], hostKeys: [], image: "g", build: undefined },
      secrets: [secret("K", "v", { host: "api.anthropic.com", header: "x-api-key", format: "{value}" })]
    }), ctx)
    expect(r.problems.join("\n")).toMatch(/^workspace: /m)
    expect(r.problems.join("\n")).toMatch(/^git: /m)
    expect(r.problems.join("\n")).toMatch(/^user: 'agent' is not numeric/m)
    expect(r.problems.join("\n")).toMatch(/^secrets: an injected secret needs the bottle's CA/m)
  })

  it("renders as the golden file says (a change here is a change to what lands on a cluster)", async () => {
    const all = [...manifests, applysetParent("default", ctx, manifests.map(groupKindOf))]
    await expect(all.map((m) => stringify(m)).join("---\n")).toMatchFileSnapshot("golden/kubernetes-bottle.yaml")
  })
})

describe("the kubernetes backend's planning", () => {
  const live = (m: Manifest, body: Record<string, unknown>): ObservedObject => ({
    apiVersion: m.apiVersion, kind: m.kind, namespace: m.metadata.namespace, name: m.metadata.name, uid: "u1",
    labels: m.metadata.labels, annotations: m.metadata.annotations, deleting: false, body
  })
  const sts = realiseKubernetes(bottle("dev", { egressAllow: ["api.anthropic.com"], resources: { cpus: 0.5, memoryBytes: 2 * 1024 ** 3, pids: 512 } }), ctx)
    .manifests.find((m) => m.kind === "StatefulSet")!
  const { apiVersion: _a, kind: _k, metadata: _m, ...body } = sts

  it("compares what bottle applied as the API reports it: defaults added are no drift, quantities by value", () => {
    const reported = structuredClone(body) as any
    const c = reported.spec.template.spec.containers[0]
    c.terminationMessagePath = "/dev/termination-log"
    c.imagePullPolicy = "IfNotPresent"
    c.resources.limits.cpu = "500m"
    c.resources.limits.memory = "2Gi"
    reported.spec.template.spec.restartPolicy = "Always"
    expect(objectDrift(sts, live(sts, reported))).toBeUndefined()
  })

  it("names the first field someone changed, and a list grown by one", () => {
    const reported = structuredClone(body) as any
    reported.spec.template.spec.containers[0].securityContext.capabilities.drop = []
    expect(objectDrift(sts, live(sts, reported))).toBe("drift: spec.template.spec.containers[0].securityContext.capabilities.drop has 0 entries (want 1)")
    expect(subsetDrift({ ingress: [] }, { ingress: [{ from: [] }] }, "")).toBe(".ingress is not empty")
    expect(subsetDrift({ a: { b: "x" } }, {}, "")).toBe(".a is missing")
  })

  it("a Kubernetes observer that failed keeps every state dir and blocks the bottles there, and leaves docker's planning alone", () => {
    const w = { ...emptyWorld(), dirs: [{ name: "kb", path: "/s/kb", metadata: { ...ours("kb"), backend: "kubernetes", namespace: "bottle-default" }, preserve: false }, { name: "gone", path: "/s/gone", metadata: ours("gone"), preserve: false }] }
    const o = { ...observed(w), kubernetes: { _tag: "Failed" as const, source: "kubernetes", error: "timeout" } }
    const p = plan([bottle("kc", { backend: "kubernetes", kubernetes: { namespace: "bottle-default", runtimeClassName: undefined } }), bottle("dk")], o, options("all"))
    expect(p.partial).toEqual([{ source: "kubernetes", error: "timeout" }])
    expect(p.actions.filter((a) => a._tag === "RemoveStateDir")).toEqual([])
    expect(p.actions.find((a) => a.id === "Blocked:bottle:kc")).toMatchObject({ rule: "observation incomplete" })
    expect(p.actions.some((a) => a._tag === "CreateContainer" && a.bottle === "dk")).toBe(true)
  })

  /** A cluster holding what bottle applied for these bottles (parent included), as the observer reports it. */
  const cluster = (bs: ReadonlyArray<ReturnType<typeof bottle>>, over: { parentKinds?: string; tooling?: string; listed?: ReadonlyArray<string> } = {}) => {
    const kctx = { ...ctx, prefix: "claude-bottle", tooling: "bottle/v0.1.0" }
    const ms = bs.flatMap((b) => realiseKubernetes(b, kctx).manifests)
    const parent = applysetParent("default", kctx, ms.map(groupKindOf))
    const withKinds = over.parentKinds !== undefined ? { ...parent, metadata: { ...parent.metadata, annotations: { ...parent.metadata.annotations, [Applyset.containsGroupKinds]: over.parentKinds, ...(over.tooling ? { [Applyset.tooling]: over.tooling } : {}) } } } : over.tooling ? { ...parent, metadata: { ...parent.metadata, annotations: { ...parent.metadata.annotations, [Applyset.tooling]: over.tooling } } } : parent
    const objects = [withKinds, ...ms].map((m, i) => {
      const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = m
      return { ...live(m, rest), uid: `uid-${i}` }
    })
    const k8s = { context: "fake", server: "http://fake", namespaces: [{ name: "bottle-default", exists: true }], objects, sandboxApi: false, listed: over.listed ?? ["ServiceAccount", "Secret", "ConfigMap", "Service", "PersistentVolumeClaim", "Deployment.apps", "StatefulSet.apps", "NetworkPolicy.networking.k8s.io"] }
    return k8s
  }
  const kb = (name: string, over: Partial<ReturnType<typeof bottle>> = {}) =>
    bottle(name, { backend: "kubernetes", egressAllow: ["api.anthropic.com"], kubernetes: { namespace: "bottle-default", runtimeClassName: undefined }, ...over })
  const stateOf = (name: string, preserve = false) => ({ name, path: `/s/${name}`, metadata: { ...ours(name), backend: "kubernetes", namespace: "bottle-default" }, preserve })
  const planFor = (k8s: ReturnType<typeof cluster>, dirs: ReadonlyArray<ReturnType<typeof stateOf>>, desired: ReadonlyArray<ReturnType<typeof bottle>> = []) =>
    plan(desired, { ...observed({ ...emptyWorld(), dirs: [...dirs] }), kubernetes: { _tag: "Ok", value: k8s } }, { ...options("all"), kubernetes: { tooling: "bottle/v0.1.0", stateSize: "5Gi" } })

  it("a preserved bottle's claim stays, and so do its set's parent and its state dir (it is live there)", () => {
    const p = planFor(cluster([kb("keep", { preserve: true })]), [stateOf("keep")])
    expect(p.actions.find((a) => a.id === "Blocked:object:bottle-default/PersistentVolumeClaim/keep-state")).toMatchObject({ rule: "preserve", error: false })
    expect(p.actions.some((a) => a._tag === "DeleteObject" && a.resource.includes("PersistentVolumeClaim"))).toBe(false)
    expect(p.actions.some((a) => a._tag === "DeleteObject" && a.resource.includes("applyset."))).toBe(false)
    expect(p.actions.find((a) => a.id === "Blocked:state:keep")).toMatchObject({ rule: "live" })
    // A .preserve marker on the host keeps the claim of a bottle whose spec did not say preserve.
    const q = planFor(cluster([kb("marked")]), [stateOf("marked", true)])
    expect(q.actions.some((a) => a._tag === "DeleteObject" && a.resource.includes("PersistentVolumeClaim"))).toBe(false)
  })

  it("members of a set whose parent another tool owns are blocked, named, and keep their state dir", () => {
    const p = planFor(cluster([kb("x")], { tooling: "kubectl/v1.30" }), [stateOf("x")])
    expect(p.actions.filter((a) => a._tag === "DeleteObject")).toEqual([])
    expect(p.actions.filter((a) => a._tag === "Blocked" && a.rule === "applyset not ours").length).toBe(8)
    expect(p.actions.some((a) => a._tag === "RemoveStateDir")).toBe(false)
  })

  it("prunes a set whole in kubectl's order, and keeps a parent listing a kind it did not look at", () => {
    const p = planFor(cluster([kb("gone")]), [stateOf("gone")])
    const deletes = p.actions.filter((a) => a._tag === "DeleteObject")
    const parent = deletes.find((a) => a.resource.includes("applyset."))!
    expect(parent.after).toEqual(expect.arrayContaining(deletes.filter((a) => a !== parent).map((a) => a.id)))
    const policy = deletes.find((a) => a.resource.endsWith("NetworkPolicy/gone-agent"))!
    expect(policy.after).toContain("DeleteObject:bottle-default/StatefulSet/gone-agent")
    const sandbox = planFor(cluster([kb("gone")], { parentKinds: "Sandbox.agents.x-k8s.io,ServiceAccount" }), [stateOf("gone")])
    expect(sandbox.actions.some((a) => a._tag === "DeleteObject" && a.resource.includes("applyset."))).toBe(false)
    expect(sandbox.actions.find((a) => a._tag === "ApplyObject")).toMatchObject({ cause: "ApplySet parent narrowed to the kinds its set has" })
  })

  it("a bottle moved off Kubernetes waits for its objects to go before its state dir forgets the namespace", () => {
    const p = planFor(cluster([kb("mv")]), [stateOf("mv")], [bottle("mv")])
    const sd = p.actions.find((a) => a._tag === "EnsureStateDir")!
    expect(sd.after.length).toBe(8)
    expect(sd.after.every((id) => id.startsWith("DeleteObject:"))).toBe(true)
  })

  it("verify's probe pod is a valid, hardened Pod, fenced as the agent (its policy selects it), never restarted", () => {
    const pod = kubeProbePod({ name: "dev", set: "default", proxyImage: "bottle/mitmproxy:1" }, ctx, "abc123")
    expect(() => validate(pod)).not.toThrow()
    expect(pod.metadata.name).toBe("dev-probe-abc123")
    // The same probe as the agent's gate, in verify mode, finding the proxy as the agent does.
    const probe = (pod["spec"] as any).containers[0]
    const gate = (realiseKubernetes(full, { ...ctx, ca }).manifests.find((m) => m.kind === "StatefulSet")!["spec"] as any).template.spec.initContainers[0]
    expect(probe.command.slice(0, 3)).toEqual(gate.command.slice(0, 3))
    expect(JSON.parse(probe.command[3])).toMatchObject({ mode: "verify", cluster: true, proxyHostEnv: "BOTTLE_PROXY_HOST" })
    expect(probe.image).toBe("bottle/mitmproxy:1")
    expect(probe.env).toEqual(gate.env)
    expect((pod["spec"] as any).enableServiceLinks).toBe(true)
    expect(pod.metadata.labels).toMatchObject({ [BL.bottle]: "dev", [ROLE_LABEL]: "probe", [Applyset.partOf]: applysetId(parentRef("default", "bottle-default", "claude-bottle")) })
    const policy = byKind(realiseKubernetes(full, { ...ctx, ca }).manifests, "NetworkPolicy", "dev-agent")[0]!.spec as any
    expect(policy.podSelector.matchExpressions[0].values).toContain(pod.metadata.labels[ROLE_LABEL])
    expect(pod["spec"]).toMatchObject({ restartPolicy: "Never", automountServiceAccountToken: false, containers: [{ securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }] })
  })

  it("runs the agent as an agent-sandbox Sandbox where the cluster serves it: valid, hardened as the StatefulSet's pod is", () => {
    const sts = realiseKubernetes(full, { ...ctx, ca }).manifests.find((m) => m.kind === "StatefulSet")!
    const sbx = realiseKubernetes(full, { ...ctx, ca, sandboxApi: true }).manifests.find((m) => m.kind === "Sandbox")!
    expect(sbx.apiVersion).toBe("agents.x-k8s.io/v1alpha1")
    expect(() => validateSandbox(sbx)).not.toThrow()
    expect((sbx["spec"] as any).podTemplate).toEqual((sts["spec"] as any).template)
    expect(() => validateSandbox({ ...sbx, spec: { ...(sbx["spec"] as object), replicas: 2 } })).toThrow("0 or 1")
    expect(realiseKubernetes(full, { ...ctx, ca, sandboxApi: true }).manifests.some((m) => m.kind === "StatefulSet")).toBe(false)
  })

  it("verify's API checks: what bottle applies holds; a policy let open, a token mounted or a capability kept does not", () => {
    const k = cluster([kb("v")])
    const fence = (objs: typeof k.objects) => kubeFence(objs, "v", objs.filter((o) => o.kind === "NetworkPolicy"))
    expect(fence(k.objects).every((p) => p.ok)).toBe(true)
    const edit = (kind: string, f: (body: any) => void) => ({
      ...k,
      objects: k.objects.map((o) => {
        if (o.kind !== kind) return o
        const body = structuredClone(o.body) as any
        f(body)
        return { ...o, body }
      })
    })
    const failed = (objs: typeof k.objects) => fence(objs).filter((p) => !p.ok).map((p) => p.detail)
    expect(failed(edit("NetworkPolicy", (b) => { if (b.spec.podSelector.matchExpressions !== undefined) b.spec.egress.push({ to: [{ ipBlock: { cidr: "0.0.0.0/0" } }] }) }).objects)).toEqual([expect.stringContaining("lets it reach")])
    expect(failed(edit("NetworkPolicy", (b) => { b.spec.policyTypes = ["Ingress"] }).objects)[0]).toContain("not Ingress and Egress")
    expect(failed(k.objects.filter((o) => !(o.kind === "NetworkPolicy" && o.name === "v-egress")))).toEqual([expect.stringContaining("proxy's NetworkPolicy is missing")])
    expect(failed(edit("StatefulSet", (b) => { b.spec.template.spec.automountServiceAccountToken = true }).objects)).toEqual([expect.stringContaining("service-account token")])
    expect(failed(edit("StatefulSet", (b) => { b.spec.template.spec.containers[0].securityContext.capabilities.drop = [] }).objects)).toEqual([expect.stringContaining("keeps capabilities")])
  })

  it("verify counts every NetworkPolicy that selects the agent's pod (they add up), and no listing is no pass", () => {
    const k = cluster([kb("v")])
    const labels = { "dev.bottle.bottle": "v", "dev.bottle.role": "agent", app: "x" }
    expect(selectorMatches({}, labels)).toBe(true)
    expect(selectorMatches({ matchExpressions: [{ key: "dev.bottle.role", operator: "NotIn", values: ["agent"] }] }, labels)).toBe(false)
    expect(selectorMatches({ matchExpressions: [{ key: "team", operator: "DoesNotExist" }] }, labels)).toBe(true)
    const policy = (name: string, spec: Record<string, unknown>) => ({ ...k.objects[0]!, kind: "NetworkPolicy", apiVersion: "networking.k8s.io/v1", name, labels: {}, body: { spec } })
    const own = k.objects.filter((o) => o.kind === "NetworkPolicy")
    const prop = (policies?: ReadonlyArray<ObservedObject>) => kubeFence(k.objects, "v", policies).find((p) => p.name === "no other NetworkPolicy opens it")!
    expect(prop([...own, policy("deny-all", { podSelector: {}, policyTypes: ["Egress"] })]).ok).toBe(true)
    expect(prop([...own, policy("other-app", { podSelector: { matchLabels: { app: "web" } }, egress: [{}] })]).ok).toBe(true)
    expect(prop([...own, policy("allow-all", { podSelector: {}, policyTypes: ["Egress"], egress: [{}] })]).detail).toContain("allow-all also selects the agent's pod")
    expect(prop(undefined).ok).toBe(false)
  })

  it("the agent's pod first proves its fence from inside (an init container that must see it hold), then starts the agent", () => {
    const sts = realiseKubernetes(full, { ...ctx, ca }).manifests.find((m) => m.kind === "StatefulSet")!
    const pod = (sts["spec"] as any).template.spec
    expect(pod.initContainers).toHaveLength(1)
    const gate = pod.initContainers[0]
    expect(gate.command.slice(0, 2)).toEqual(["python3", "-c"])
    const input = JSON.parse(gate.command[3])
    expect(input).toMatchObject({ mode: "gate", cluster: true, proxyHostEnv: "BOTTLE_PROXY_HOST", proxy: { port: 8888 } })
    expect(input.publicAddresses.length).toBeGreaterThan(0)
    expect(input.dnsNames.length).toBeGreaterThan(0)
    expect(gate.env).toEqual([
      { name: "BOTTLE_NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
      { name: "BOTTLE_PROXY_HOST", value: "$(DEV_EGRESS_SERVICE_HOST)" }
    ])
    expect(gate.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } })
    // A pod that must not run as root gets a uid the kubelet can check.
    const noUser = realiseKubernetes(bottle("nu", { egressAllow: ["api.anthropic.com"] }), ctx).manifests.find((m) => m.kind === "StatefulSet")!
    expect((noUser["spec"] as any).template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 })
  })

  it("drift: what no one may add to a pod (the node's namespaces, debug containers) is seen; what the API leaves out is not", () => {
    const m = realiseKubernetes(kb("d", { env: { EMPTY: "" } }), ctx).manifests.find((x) => x.kind === "StatefulSet")!
    const { apiVersion: _a, kind: _k, metadata: _m, ...body } = m
    const reported = structuredClone(body) as any
    reported.spec.template.spec.containers[0].env = reported.spec.template.spec.containers[0].env.map((e: any) => (e.value === "" ? { name: e.name } : e))
    expect(objectDrift(m, live(m, reported))).toBeUndefined()
    reported.spec.template.spec.hostNetwork = true
    expect(objectDrift(m, live(m, reported))).toBe("drift: spec.template.spec.hostNetwork is true")
  })
})
