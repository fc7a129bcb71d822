/**
 * The kubernetes backend: a bottle is a set of objects in its set's
 * namespace (src/resources/realiseKubernetes.ts), owned through an ApplySet
 * (KEP-3659) whose parent is a ConfigMap per set. Prune follows kubectl's
 * order: widen the parent's kinds, apply, delete members not applied (each by
 * its UID), narrow the parent. Drift is what bottle applied, compared as the
 * API reports it. Pure.
 */
import type { DesiredBottle } from "../../resources/desired.js"
import { Bottle as BL } from "../../resources/labels.js"
import type { KubeSnapshot, ObservedObject, Source } from "../../resources/observed.js"
import type { RealiseContext } from "../../resources/realise.js"
import {
  Applyset,
  applysetId,
  applysetParent,
  groupKindOf,
  kubeNamespace,
  kubeStateDir,
  parentRef,
  PRESERVE_ANNOTATION,
  realiseKubernetes,
  WORKLOADS,
  type Manifest
} from "../../resources/realiseKubernetes.js"
import { Action } from "../actions.js"
import { refusal, type BackendPlanner, type Owned, type PlanState, type Prepared, type Refusal } from "../backend.js"
import { byText } from "../../resources/order.js"

export interface KubeOptions {
  readonly realise: RealiseContext
  /** `bottle/<version>`: the ApplySet tooling bottle writes and accepts. */
  readonly tooling: string
  /** The size of each bottle's workspace claim. */
  readonly stateSize: string
  /** An image with python3 for the gate and the probes, when the proxy's has none. */
  readonly probeImage?: string | undefined
  /** Which sets this plan prunes: a parent is narrowed or deleted only there, or where a bottle is applied. */
  readonly prune: "none" | "set" | "all"
  readonly set: string
  /** Bottles whose state dir has a `.preserve` marker: their claims are kept too. */
  readonly preserved: ReadonlySet<string>
}

interface KubeOwned extends Owned {
  readonly obj: ObservedObject
}

/** Workloads (and a probe pod verify left behind) go first and are named first as live; the fence (NetworkPolicies) goes last. */
const teardownRank = (kind: string) => (WORKLOADS.has(kind) || kind === "Pod" ? 0 : kind === "NetworkPolicy" ? 2 : 1)

/** Who the proxy (and verify's probe) runs as on a cluster: nobody, whoever runs bottle (root, in CI) — no host file is mounted there. */
export const KUBE_PROXY_USER = "65534:65534"

export const objectName = (o: { readonly namespace: string; readonly kind: string; readonly name: string }) => `${o.namespace}/${o.kind}/${o.name}`
const manifestName = (m: Manifest) => objectName({ namespace: m.metadata.namespace, kind: m.kind, name: m.metadata.name })
const setKey = (namespace: string, set: string) => `${namespace}\u0000${set}`
const kindsOf = (annotation: string | undefined) => new Set((annotation ?? "").split(",").filter((k) => k !== ""))
const sameKinds = (a: ReadonlySet<string>, b: ReadonlySet<string>) => a.size === b.size && [...a].every((k) => b.has(k))

/** Kubernetes quantities ("500m", "0.5", "1Gi") compared by value, as the API may write them otherwise. */
const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/
const UNIT: Record<string, number> = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }
const quantity = (v: unknown): number | undefined => {
  const m = typeof v === "string" ? QUANTITY.exec(v) : undefined
  return m ? Number(m[1]) * UNIT[m[2] ?? ""]! : undefined
}

/**
 * The first field bottle sets that the live object does not have as set (defaults the API adds are not
 * bottle's, so they are not compared); an empty list or map wanted matches one left out.
 */
export const subsetDrift = (want: unknown, have: unknown, path: string): string | undefined => {
  if (want === null || want === undefined) return undefined
  if (Array.isArray(want)) {
    if (want.length === 0) return have === undefined || have === null || (Array.isArray(have) && have.length === 0) ? undefined : `${path} is not empty`
    if (!Array.isArray(have) || have.length !== want.length) return `${path} has ${Array.isArray(have) ? have.length : "no"} entries (want ${want.length})`
    for (let i = 0; i < want.length; i++) {
      const d = subsetDrift(want[i], have[i], `${path}[${i}]`)
      if (d !== undefined) return d
    }
    return undefined
  }
  if (typeof want === "object") {
    const entries = Object.entries(want as Record<string, unknown>)
    if (entries.length === 0) return undefined
    if (have === null || typeof have !== "object" || Array.isArray(have)) return `${path} is missing`
    for (const [k, v] of entries) {
      const d = subsetDrift(v, (have as Record<string, unknown>)[k], `${path}.${k}`)
      if (d !== undefined) return d
    }
    return undefined
  }
  if (want === have) return undefined
  // The API leaves out an empty string it was sent (an env var's empty value).
  if (want === "" && have === undefined) return undefined
  const [qw, qh] = [quantity(want), quantity(have)]
  if (qw !== undefined && qh !== undefined && Math.abs(qw - qh) <= Math.abs(qw) * 1e-9) return undefined
  return `${path} is ${have === undefined ? "missing" : JSON.stringify(have)} (want ${JSON.stringify(want)})`
}

/** What differs between an object bottle applies and the live one (Secrets by their hash alone: the API never returns what was written). */
export const objectDrift = (m: Manifest, o: ObservedObject): string | undefined => {
  if (o.annotations[BL.specHash] !== m.metadata.annotations[BL.specHash]) return o.annotations[BL.specHash] === undefined ? "not applied by bottle" : "spec changed"
  if (o.deleting) return "it is being deleted"
  if (m.kind === "Secret") return undefined
  const { apiVersion: _a, kind: _k, metadata: _m, ...body } = m
  const d = subsetDrift(body, o.body, "") ?? podExtras(o)
  return d !== undefined ? `drift: ${d.slice(1)}` : undefined
}

/** What bottle never sets in a pod and no one may add: the node's namespaces, containers slipped in for debugging. */
const podExtras = (o: ObservedObject): string | undefined => {
  const spec = (o.body["spec"] ?? {}) as Record<string, any>
  const pod = (o.kind === "Pod" ? spec : (spec["template"] ?? spec["podTemplate"])?.["spec"]) as Record<string, unknown> | undefined
  if (pod === undefined) return undefined
  const at = o.kind === "Pod" ? ".spec" : o.kind === "Sandbox" ? ".spec.podTemplate.spec" : ".spec.template.spec"
  for (const k of ["hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"]) if (pod[k] === true) return `${at}.${k} is true`
  if (Array.isArray(pod["ephemeralContainers"]) && pod["ephemeralContainers"].length > 0) return `${at}.ephemeralContainers were added`
  return undefined
}

export const kubePlanner = (source: Source<KubeSnapshot> | undefined, desired: ReadonlyArray<DesiredBottle>, opts: KubeOptions, shared: PlanState): BackendPlanner => {
  const out = shared.out
  const snap = source?._tag === "Ok" ? source.value : undefined
  const objects = snap?.objects ?? []
  const prefix = opts.realise.names.prefix
  /**
   * Members: labelled with the id of this install's parent of their set (the id is made from the install's
   * prefix: another install's objects, or a label copied from another set, make no member).
   */
  const items: Array<KubeOwned> = objects
    .filter((o) => o.labels[BL.bottle] !== undefined && o.labels[BL.set] !== undefined && o.labels[Applyset.partOf] === applysetId(parentRef(o.labels[BL.set]!, o.namespace, prefix)))
    .map((obj) => ({
      obj,
      backend: "kubernetes",
      kind: "object",
      name: objectName(obj),
      owner: obj.labels[BL.bottle],
      set: obj.labels[BL.set],
      state: obj.deleting ? "being deleted" : undefined,
      rank: WORKLOADS.has(obj.kind) || obj.kind === "Pod" ? 1 : 2
    }))
  const parents = objects.filter((o) => o.kind === "ConfigMap" && o.labels[Applyset.id] !== undefined)
  const parentOf = (namespace: string, set: string) => parents.find((p) => p.namespace === namespace && p.name === parentRef(set, namespace, prefix).name)
  const contextOf = (namespace: string) => ({
    namespace,
    prefix,
    sandboxApi: snap?.sandboxApi === true,
    probeImage: opts.probeImage,
    tooling: opts.tooling,
    egressImage: opts.realise.egressImage,
    proxyUser: KUBE_PROXY_USER,
    stateSize: opts.stateSize
  })
  const realised = new Map(desired.filter((b) => b.backend === "kubernetes").map((b) => [b.name, realiseKubernetes(b, contextOf(kubeNamespace(b)))]))
  /** Every (namespace, set) this plan touches: its desired members' kinds, its parent as widened, what its actions are. */
  const sets = new Map<string, { namespace: string; set: string; desiredKinds: Set<string>; widened: string | undefined; kinds: Set<string>; actions: Array<string>; bottles: number }>()
  const setOf = (namespace: string, set: string) => {
    const key = setKey(namespace, set)
    let s = sets.get(key)
    if (s === undefined) {
      s = { namespace, set, desiredKinds: new Set(), widened: undefined, kinds: kindsOf(parentOf(namespace, set)?.annotations[Applyset.containsGroupKinds]), actions: [], bottles: 0 }
      sets.set(key, s)
    }
    return s
  }
  for (const b of desired) {
    const r = realised.get(b.name)
    if (r === undefined) continue
    const s = setOf(kubeNamespace(b), b.set)
    s.bottles++
    for (const m of r.manifests) s.desiredKinds.add(groupKindOf(m))
  }
  for (const p of parents) {
    const set = p.labels[BL.set]
    if (set !== undefined && p.name === parentRef(set, p.namespace, prefix).name) setOf(p.namespace, set)
  }

  /** The parent, widened to every kind this set will have before anything of it is applied (kubectl's first step). */
  const widen = (namespace: string, set: string, after: ReadonlyArray<string>): string | undefined => {
    const s = setOf(namespace, set)
    if (s.widened !== undefined || (parentOf(namespace, set) !== undefined && [...s.desiredKinds].every((k) => s.kinds.has(k)))) return s.widened
    const all = new Set([...s.kinds, ...s.desiredKinds])
    const manifest = applysetParent(set, contextOf(namespace), all)
    s.widened = out.add(Action.ApplyObject({
      id: `ApplyObject:${manifestName(manifest)}`, bottle: undefined, resource: manifestName(manifest), after,
      cause: parentOf(namespace, set) === undefined ? "ApplySet parent missing" : "ApplySet parent widened to the kinds this set will have",
      manifest, create: parentOf(namespace, set) === undefined
    }))
    s.kinds = all
    return s.widened
  }

  const refuseParent = (namespace: string, set: string): Refusal | undefined => {
    const p = parentOf(namespace, set)
    if (p === undefined) return undefined
    const tooling = p.annotations[Applyset.tooling] ?? ""
    if (!tooling.startsWith("bottle/")) return refusal("applyset not ours", `ConfigMap ${namespace}/${p.name} is an ApplySet parent of tooling '${tooling || "none"}': bottle will not take over another tool's set`)
    const id = applysetId(parentRef(set, namespace, prefix))
    if (p.labels[Applyset.id] !== id) return refusal("applyset not ours", `ConfigMap ${namespace}/${p.name} carries ApplySet id '${p.labels[Applyset.id]}', not ${id}: bottle will not take it over`)
    return undefined
  }

  const deleteAction = (bottle: string | undefined, o: ObservedObject, cause: string, after: ReadonlyArray<string>) =>
    Action.DeleteObject({ id: `DeleteObject:${objectName(o)}`, bottle, resource: objectName(o), cause, after, apiVersion: o.apiVersion, objectKind: o.kind, namespace: o.namespace, name: o.name, uid: o.uid })

  /** Deletes in the backend's order; a kept claim (preserve) is blocked, never deleted. */
  const remove = (bottle: string | undefined, objs: ReadonlyArray<ObservedObject>, cause: string, first: ReadonlyArray<string>): Array<string> => {
    const ids: Array<string> = []
    let before = [...first]
    for (const rank of [0, 1, 2]) {
      const now: Array<string> = []
      for (const o of objs.filter((x) => teardownRank(x.kind) === rank).sort((x, y) => byText(objectName(x), objectName(y)))) {
        if (o.kind === "PersistentVolumeClaim" && (o.annotations[PRESERVE_ANNOTATION] === "true" || opts.preserved.has(o.labels[BL.bottle] ?? ""))) {
          out.add(Action.Blocked({ id: `Blocked:object:${objectName(o)}`, bottle, resource: objectName(o), kind: "object", rule: "preserve", cause: "preserve: true: only a person deletes this claim", after: [], error: false }))
          continue
        }
        const id = out.add(deleteAction(bottle, o, cause, before))
        const owned = items.find((i) => i.obj === o)
        if (owned !== undefined) shared.removed.add(owned)
        now.push(id)
        if (o.labels[BL.set] !== undefined) setOf(o.namespace, o.labels[BL.set]!).actions.push(id)
      }
      ids.push(...now)
      if (now.length > 0) before = [...before, ...now]
    }
    return ids
  }

  /** What a bottle left in a namespace it moved from: taken down before anything changes (its state dir still says where). */
  const leave = (b: DesiredBottle): ReadonlyArray<string> => {
    const elsewhere = items.filter((i) => i.owner === b.name && i.obj.namespace !== kubeNamespace(b))
    elsewhere.forEach((i) => shared.claimed.add(i))
    return remove(b.name, elsewhere.map((i) => i.obj), `bottle moved to namespace ${kubeNamespace(b)}`, [])
  }

  const planBottle = (b: DesiredBottle, manifests: ReadonlyArray<Manifest>, sdId: string | undefined, moved: ReadonlyArray<string>) => {
    const namespace = kubeNamespace(b)
    const s = setOf(namespace, b.set)
    // The parent after the state dir that records the namespace: nothing is made there before a later run could find it.
    const widened = widen(namespace, b.set, sdId !== undefined ? [sdId] : [])
    const mine = items.filter((i) => i.owner === b.name && i.obj.namespace === namespace)
    mine.forEach((i) => shared.claimed.add(i))
    const extras = mine.filter((i) => !manifests.some((m) => m.kind === i.obj.kind && m.metadata.name === i.obj.name))
    // An agent that changes kind (StatefulSet ↔ Sandbox, as the cluster gains or loses agent-sandbox) goes first: two pods never share its workspace.
    const oldWorkloads = remove(b.name, extras.filter((i) => WORKLOADS.has(i.obj.kind)).map((i) => i.obj), "the agent's workload changes kind", [])
    let previous: Array<string> = [...(widened !== undefined ? [widened] : []), ...(sdId !== undefined ? [sdId] : []), ...moved, ...oldWorkloads]
    const applied: Array<string> = []
    for (const m of manifests) {
      const live = mine.find((i) => i.obj.kind === m.kind && i.obj.name === m.metadata.name)?.obj
      const drift = live === undefined ? "missing" : objectDrift(m, live)
      const resource = manifestName(m)
      if (drift === undefined) {
        out.add(Action.Unchanged({ id: `Unchanged:object:${resource}`, bottle: b.name, resource, kind: "object", cause: "up to date", after: [] }))
        continue
      }
      // One after another, in the order realised: nothing runs before the NetworkPolicy that fences it.
      const id = out.add(Action.ApplyObject({ id: `ApplyObject:${resource}`, bottle: b.name, resource, cause: drift, after: previous, manifest: m, create: live === undefined }))
      previous = [id]
      applied.push(id)
    }
    s.actions.push(...applied)
    remove(b.name, extras.filter((i) => !WORKLOADS.has(i.obj.kind)).map((i) => i.obj), "not in spec", applied)
  }

  return {
    name: "kubernetes",
    items,
    blind: source?._tag === "Failed" ? `Kubernetes could not be observed (${source.error})` : undefined,
    blindRisk: "its pods may still be running",
    // A cluster is asked whenever a bottle is, or was, on one: it is never "not there", only unreachable.
    missing: undefined,
    // Names on a cluster carry no install prefix: what is not this install's set's is not seen at all.
    elsewhere: [],
    observable: (b) => {
      if (snap === undefined) {
        return refusal("observation incomplete", source?._tag === "Failed" ? `Kubernetes could not be observed: ${source.error}` : "the Kubernetes cluster was not asked")
      }
      const namespace = kubeNamespace(b)
      if (snap.namespaces.find((n) => n.name === namespace)?.exists !== true) {
        return refusal("namespace missing", `namespace ${namespace} does not exist in context ${snap.context}; bottle never makes or deletes namespaces: kubectl create namespace ${namespace}`)
      }
      return refuseParent(namespace, b.set)
    },
    prepare: (b): Prepared | Refusal => {
      const r = realised.get(b.name)!
      if (r.problems.length > 0) return refusal("not supported on kubernetes", r.problems.join("; "))
      return { _tag: "Prepared", stateDir: kubeStateDir(b, opts.realise), leave: () => leave(b), plan: (sdId, after) => planBottle(b, r.manifests, sdId, after) }
    },
    teardownOrder: 1,
    teardown: (bottle, owned, cause) => {
      const objs = items.filter((i) => owned.includes(i)).map((i) => i.obj)
      // A set whose parent is not bottle's is not pruned through it: its members stay, and say why.
      for (const o of objs) {
        const foreign = refuseParent(o.namespace, o.labels[BL.set]!)
        if (foreign !== undefined) out.add(Action.Blocked({ id: `Blocked:object:${objectName(o)}`, bottle, resource: objectName(o), kind: "object", rule: foreign.rule, cause: foreign.cause, after: [], error: true }))
      }
      const allowed = objs.filter((o) => refuseParent(o.namespace, o.labels[BL.set]!) === undefined)
      // kubectl's order: a set's members go once everything of it was applied; within it, workloads first, the fence last.
      return [...new Set(allowed.map((o) => setKey(o.namespace, o.labels[BL.set]!)))].flatMap((key) => {
        const inSet = allowed.filter((o) => setKey(o.namespace, o.labels[BL.set]!) === key)
        const s = setOf(inSet[0]!.namespace, inSet[0]!.labels[BL.set]!)
        return remove(bottle, inSet, cause, [...(s.widened !== undefined ? [s.widened] : []), ...s.actions])
      })
    },
    // Narrow each parent to the kinds its set still has, once everything of the set is done; a set left empty loses its parent.
    finish: () => {
      for (const s of sets.values()) {
        const inScope = opts.prune === "all" || (opts.prune === "set" && s.set === opts.set)
        if (!inScope && s.bottles === 0) continue
        const parent = parentOf(s.namespace, s.set)
        if (parent === undefined && s.widened === undefined) continue
        if (refuseParent(s.namespace, s.set) !== undefined) continue
        // verify's probe pods are members (so a leaked one is reaped) but no kind the parent lists.
        const left = items.filter((i) => i.obj.namespace === s.namespace && i.set === s.set && !shared.removed.has(i) && i.obj.kind !== "Pod")
        // Kinds the parent lists that were not looked at (an API not served now, a newer bottle's kinds) stay listed.
        const unlisted = [...kindsOf(parent?.annotations[Applyset.containsGroupKinds])].filter((k) => !(snap?.listed ?? []).includes(k))
        const kinds = new Set([...s.desiredKinds, ...left.map((i) => groupKindOf(i.obj)), ...unlisted])
        const after = [...(s.widened !== undefined ? [s.widened] : []), ...s.actions]
        if (kinds.size === 0 && s.bottles === 0) {
          if (parent !== undefined && inScope) out.add(deleteAction(undefined, parent, "its set has no bottles left", after))
          continue
        }
        if (sameKinds(kinds, s.kinds)) continue
        const manifest = applysetParent(s.set, contextOf(s.namespace), kinds)
        out.add(Action.ApplyObject({ id: `ApplyObject:${manifestName(manifest)}:narrow`, bottle: undefined, resource: manifestName(manifest), cause: "ApplySet parent narrowed to the kinds its set has", after, manifest, create: false }))
      }
    }
  }
}
