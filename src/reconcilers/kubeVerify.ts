/**
 * What `bottle verify` can prove of a Kubernetes bottle from the API: the
 * objects that fence it are there and say what bottle means them to say,
 * whatever its spec (verify reads none). Whether the cluster enforces
 * NetworkPolicy at all is its network plugin's business: verify says so.
 * Pure.
 */
import { Bottle as BL } from "../resources/labels.js"
import type { ObservedObject } from "../resources/observed.js"
import type { ProbeProperty } from "../resources/probeScript.js"
import { EGRESS_PORT } from "../resources/realise.js"
import { fencedSelector, kubeNames, NON_PUBLIC_V4, ROLE_LABEL } from "../resources/realiseKubernetes.js"

export const ENFORCEMENT_WARNING =
  "on Kubernetes the fence is NetworkPolicy: it holds only where the cluster's network plugin enforces it (Calico, Cilium, and the like; flannel alone does not)"

type Json = Readonly<Record<string, any>>

const selects = (selector: Json | undefined, bottle: string, role: string) =>
  selector?.["matchLabels"]?.[BL.bottle] === bottle && selector?.["matchLabels"]?.[ROLE_LABEL] === role && selector?.["matchExpressions"] === undefined

/** The agent's fence selects its pods and its probe's, and nothing else of the bottle's. */
const selectsFenced = (selector: Json | undefined, bottle: string) => {
  const want = fencedSelector(bottle)
  return JSON.stringify(selector?.["matchLabels"]) === JSON.stringify(want.matchLabels) &&
    JSON.stringify(selector?.["matchExpressions"]) === JSON.stringify(want.matchExpressions)
}

/** A policy's peer: a pod selector within the namespace, or kube-dns. */
const peerIs = (peer: Json, bottle: string, role: string) => peer["namespaceSelector"] === undefined && peer["ipBlock"] === undefined && selects(peer["podSelector"], bottle, role)
const isKubeDns = (peer: Json) =>
  peer["ipBlock"] === undefined && peer["namespaceSelector"]?.["matchLabels"]?.["kubernetes.io/metadata.name"] === "kube-system" && peer["podSelector"]?.["matchLabels"]?.["k8s-app"] === "kube-dns"
const dnsPorts = (ports: ReadonlyArray<Json> | undefined) => (ports ?? []).length > 0 && (ports ?? []).every((p) => p["port"] === 53)

const check = (name: string, problem: string | undefined, fine: string): ProbeProperty => ({ name, ok: problem === undefined, detail: problem ?? fine })

/** The agent's policy: it selects the agent's pods, lets nothing in, and lets out only to the proxy (not even DNS: the cluster's resolver forwards outside names). */
const agentPolicy = (p: ObservedObject | undefined, bottle: string, hasProxy: boolean): string | undefined => {
  if (p === undefined) return "its NetworkPolicy is missing: the agent's pod is not fenced at all"
  const spec = (p.body["spec"] ?? {}) as Json
  if (!selectsFenced(spec["podSelector"], bottle)) return "its NetworkPolicy does not select the agent's pod"
  const types: ReadonlyArray<string> = spec["policyTypes"] ?? []
  if (!types.includes("Egress") || !types.includes("Ingress")) return `its NetworkPolicy restricts ${types.join(" and ") || "nothing"}, not Ingress and Egress`
  if ((spec["ingress"] ?? []).length > 0) return "its NetworkPolicy lets connections in"
  const egress: ReadonlyArray<Json> = spec["egress"] ?? []
  for (const rule of egress) {
    const to: ReadonlyArray<Json> = rule["to"] ?? []
    if (to.length === 0) return "its NetworkPolicy has an egress rule to anywhere"
    for (const peer of to) {
      if (hasProxy && peerIs(peer, bottle, "egress")) {
        if ((rule["ports"] ?? []).length === 0 || rule["ports"].some((x: Json) => x["port"] !== EGRESS_PORT || x["endPort"] !== undefined)) return "its NetworkPolicy lets it reach its proxy on other ports"
        continue
      }
      return `its NetworkPolicy lets it reach ${JSON.stringify(peer)}`
    }
  }
  return undefined
}

/** The proxy's policy: only its agent gets in, and out it reaches no private address. */
const proxyPolicy = (p: ObservedObject | undefined, bottle: string): string | undefined => {
  if (p === undefined) return "the proxy's NetworkPolicy is missing: it may reach the cluster and the host"
  const spec = (p.body["spec"] ?? {}) as Json
  if (!selects(spec["podSelector"], bottle, "egress")) return "the proxy's NetworkPolicy does not select the proxy's pod"
  const types: ReadonlyArray<string> = spec["policyTypes"] ?? []
  if (!types.includes("Egress") || !types.includes("Ingress")) return "the proxy's NetworkPolicy does not restrict both ways"
  for (const rule of (spec["ingress"] ?? []) as ReadonlyArray<Json>) {
    const from: ReadonlyArray<Json> = rule["from"] ?? []
    if (from.length === 0 || !from.every((peer) => peer["namespaceSelector"] === undefined && peer["ipBlock"] === undefined && selectsFenced(peer["podSelector"], bottle))) return "the proxy's NetworkPolicy lets in more than its agent"
  }
  for (const rule of (spec["egress"] ?? []) as ReadonlyArray<Json>) {
    const to: ReadonlyArray<Json> = rule["to"] ?? []
    if (to.length === 0) return "the proxy's NetworkPolicy lets it reach anything"
    for (const peer of to) {
      if (isKubeDns(peer) && dnsPorts(rule["ports"])) continue
      const block = peer["ipBlock"] as Json | undefined
      const except: ReadonlyArray<string> = block?.["except"] ?? []
      // Every non-public range kept out (the cloud's metadata services among them), and only on named ports.
      if (block?.["cidr"] === "0.0.0.0/0" && NON_PUBLIC_V4.every((c) => except.includes(c)) && (rule["ports"] ?? []).length > 0 &&
        rule["ports"].every((x: Json) => typeof x["port"] === "number" && x["endPort"] === undefined)) continue
      return `the proxy's NetworkPolicy lets it reach ${JSON.stringify(peer)}`
    }
  }
  return undefined
}

/** The labels the agent's pod runs with (its template's), or what bottle gives it. */
const podLabelsOf = (w: ObservedObject | undefined, bottle: string): Readonly<Record<string, string>> => {
  const spec = (w?.body["spec"] ?? {}) as Json
  return ((spec["template"] ?? spec["podTemplate"])?.["metadata"]?.["labels"] as Record<string, string> | undefined) ?? { [BL.bottle]: bottle, [ROLE_LABEL]: "agent" }
}

/** What runs the agent: no service-account token, nothing privileged, every capability dropped. */
const hardening = (w: ObservedObject | undefined): string | undefined => {
  if (w === undefined) return "its agent's workload is missing"
  const spec = (w.body["spec"] ?? {}) as Json
  const pod = (spec["template"] ?? spec["podTemplate"] ?? {})["spec"] as Json | undefined
  if (pod === undefined) return "its workload has no pod template"
  if (pod["automountServiceAccountToken"] !== false) return "its pod may mount a service-account token (the agent could call the API)"
  if (pod["hostNetwork"] === true || pod["hostPID"] === true || pod["hostIPC"] === true) return "its pod shares the node's namespaces"
  if (((pod["volumes"] ?? []) as ReadonlyArray<Json>).some((v) => v["hostPath"] !== undefined)) return "its pod mounts a path of the node"
  for (const c of [...(pod["initContainers"] ?? []), ...(pod["containers"] ?? [])] as ReadonlyArray<Json>) {
    const sc = (c["securityContext"] ?? {}) as Json
    if (sc["privileged"] === true || sc["allowPrivilegeEscalation"] !== false) return `container ${c["name"]} may gain privileges`
    if (!(sc["capabilities"]?.["drop"] ?? []).includes("ALL")) return `container ${c["name"]} keeps capabilities`
  }
  return undefined
}

/** Whether a label selector (matchLabels, matchExpressions) selects a pod with these labels; `{}` selects every pod. */
export const selectorMatches = (selector: Json | undefined, labels: Readonly<Record<string, string>>): boolean => {
  if (selector === undefined || selector === null) return false
  const ml = (selector["matchLabels"] ?? {}) as Readonly<Record<string, string>>
  if (!Object.entries(ml).every(([k, v]) => labels[k] === v)) return false
  return ((selector["matchExpressions"] ?? []) as ReadonlyArray<Json>).every((e) => {
    const has = Object.prototype.hasOwnProperty.call(labels, e["key"])
    const values: ReadonlyArray<string> = e["values"] ?? []
    switch (e["operator"]) {
      case "In": return has && values.includes(labels[e["key"]]!)
      case "NotIn": return !has || !values.includes(labels[e["key"]]!)
      case "Exists": return has
      case "DoesNotExist": return !has
      default: return false
    }
  })
}

/**
 * NetworkPolicies add up: any other policy that selects the agent's pod and allows something opens the
 * fence that far. `policies` is every NetworkPolicy of the namespace, bottle's or not.
 */
const othersOpen = (policies: ReadonlyArray<ObservedObject>, pods: ReadonlyArray<Readonly<Record<string, string>>>, own: ReadonlyArray<string>): string | undefined => {
  for (const p of policies) {
    if (own.includes(p.uid)) continue
    const spec = (p.body["spec"] ?? {}) as Json
    if (!pods.some((labels) => selectorMatches(spec["podSelector"], labels))) continue
    const types: ReadonlyArray<string> = spec["policyTypes"] ?? (spec["egress"] !== undefined ? ["Ingress", "Egress"] : ["Ingress"])
    if (types.includes("Egress") && (spec["egress"] ?? []).length > 0) return `NetworkPolicy ${p.name} also selects the agent's pod and lets it out (${JSON.stringify(spec["egress"]).slice(0, 200)})`
    if (types.includes("Ingress") && (spec["ingress"] ?? []).length > 0) return `NetworkPolicy ${p.name} also selects the agent's pod and lets connections in`
  }
  return undefined
}

/**
 * The properties verify proves of one Kubernetes bottle from what the API reports. `policies`: every
 * NetworkPolicy of its namespace (undefined: they could not be listed, which is no pass).
 */
export const kubeFence = (
  objects: ReadonlyArray<ObservedObject>,
  bottle: string,
  policies?: ReadonlyArray<ObservedObject>,
  /** The labels of the agent's live pods (a controller adds its own); the template's when none were read. */
  livePods?: ReadonlyArray<Readonly<Record<string, string>>>
): ReadonlyArray<ProbeProperty> => {
  const n = kubeNames(bottle)
  const mine = objects.filter((o) => o.labels[BL.bottle] === bottle)
  const find = (kind: string, name: string) => mine.find((o) => o.kind === kind && o.name === name)
  const ownPolicies = [find("NetworkPolicy", n.agent), find("NetworkPolicy", n.egress)].flatMap((p) => (p !== undefined ? [p.uid] : []))
  const proxy = find("Deployment", n.egress)
  const workload = find("StatefulSet", n.agent) ?? find("Sandbox", n.agent)
  return [
    check("agent fenced by NetworkPolicy", agentPolicy(find("NetworkPolicy", n.agent), bottle, proxy !== undefined), proxy !== undefined ? "its proxy only" : "nothing"),
    ...(proxy !== undefined ? [check("proxy fenced by NetworkPolicy", proxyPolicy(find("NetworkPolicy", n.egress), bottle), "only its agent in; no private address out")] : []),
    check("agent pod hardened", hardening(workload), "no token, no privilege, no capabilities"),
    check("no other NetworkPolicy opens it",
      policies === undefined ? "the namespace's NetworkPolicies could not be listed" : othersOpen(policies, [podLabelsOf(workload, bottle), ...(livePods ?? [])], ownPolicies),
      "no other policy of the namespace selects the agent's pod")
  ]
}
