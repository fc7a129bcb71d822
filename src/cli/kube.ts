/**
 * Reaching the cluster of the kubeconfig context (`--context`, else the
 * current one) for the Kubernetes backend: asked only when a bottle is, or
 * was, on Kubernetes. Which namespaces to look in comes from the spec and
 * from the state dirs bottle wrote before it applied anything.
 */
import { readFileSync, statSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { KubeApi, layer as kubeApiLayer, POD, type KubeError } from "../observers/KubeApi.js"
import { kubeSource } from "../observers/kubeObserver.js"
import { observe } from "../observers/observe.js"
import { Bottle as BL } from "../resources/labels.js"
import { kubeNames, ROLE_LABEL } from "../resources/realiseKubernetes.js"
import type { DesiredBottle } from "../resources/desired.js"
import type { KubeTarget } from "../resources/kubeconfig.js"
import type { Observed } from "../resources/observed.js"
import type { Settings } from "../resources/settings.js"

/** The most of a kubeconfig (or a file it names) bottle reads. */
const MAX_KUBECONFIG = 4 * 1024 * 1024

const readSmall = (path: string): string => {
  const st = statSync(path)
  if (!st.isFile()) throw Object.assign(new Error("not a regular file"), { code: "not a regular file" })
  if (st.size > MAX_KUBECONFIG) throw Object.assign(new Error("too large"), { code: `larger than ${MAX_KUBECONFIG} bytes` })
  return readFileSync(path, "utf8")
}

/**
 * The target the kubeconfig names, or why it cannot be used (naming the file and field). Its reader (and
 * the YAML parser under it) loads only when a bottle is, or was, on Kubernetes: not at every start.
 */
export const kubeTarget = (settings: Settings, context: string | undefined): Effect.Effect<KubeTarget | string> =>
  Effect.promise(() => import("../resources/kubeconfig.js")).pipe(Effect.map(({ kubeconfigPaths, resolveKubeconfig }) => {
    const paths = kubeconfigPaths(settings.host.env, settings.host.home)
    const files = paths.flatMap((path) => {
      try {
        return [{ path, text: readSmall(path) }]
      } catch {
        return []
      }
    })
    if (files.length === 0) return `no kubeconfig to read at ${paths.join(", ")} (KUBECONFIG, or ~/.kube/config): a bottle on Kubernetes needs one`
    return resolveKubeconfig(files, context, readSmall)
  }))

/** Namespaces to look in: the spec's Kubernetes bottles', and those recorded in state dirs. */
export const kubeNamespaces = (desired: ReadonlyArray<DesiredBottle>, observed: Observed): ReadonlyArray<string> => {
  const fromState = observed.state._tag === "Ok"
    ? observed.state.value.dirs.flatMap((d) => (d.metadata?.backend === "kubernetes" && d.metadata.namespace !== undefined ? [d.metadata.namespace] : []))
    : []
  return [...new Set([...desired.flatMap((b) => (b.kubernetes !== undefined ? [b.kubernetes.namespace] : [])), ...fromState])].sort()
}

export type KubeAccess =
  | { readonly _tag: "None" }
  | { readonly _tag: "Unusable"; readonly error: string }
  | { readonly _tag: "Ready"; readonly target: KubeTarget; readonly namespaces: ReadonlyArray<string>; readonly layer: Layer.Layer<KubeApi> }

export const kubeAccess = (settings: Settings, context: string | undefined, namespaces: ReadonlyArray<string>): Effect.Effect<KubeAccess> =>
  namespaces.length === 0
    ? Effect.succeed({ _tag: "None" })
    : kubeTarget(settings, context).pipe(Effect.map((target): KubeAccess =>
      typeof target === "string"
        ? { _tag: "Unusable", error: target }
        : { _tag: "Ready", target, namespaces, layer: kubeApiLayer({ target, timeout: `${settings.kubeTimeoutSeconds} seconds` }) }))

/** The snapshot with Kubernetes' part added (when a bottle is, or was, there). */
export const withKube = (observed: Observed, access: KubeAccess): Effect.Effect<Observed> => {
  switch (access._tag) {
    case "None":
      return Effect.succeed(observed)
    case "Unusable":
      return Effect.succeed({ ...observed, kubernetes: { _tag: "Failed", source: "kubernetes", error: access.error } })
    case "Ready":
      return kubeSource(access.namespaces, access.target.context).pipe(
        Effect.map((kubernetes): Observed => ({ ...observed, kubernetes })),
        Effect.provide(access.layer)
      )
  }
}

/** One observation for the commands that read (get, exec, logs): the local one, and Kubernetes where a state dir says a bottle is. */
export const observeEverywhere = (settings: Settings, context: string | undefined) =>
  Effect.gen(function* () {
    const local = yield* observe(settings, { inspect: false })
    const access = yield* kubeAccess(settings, context, kubeNamespaces([], local))
    return { observed: yield* withKube(local, access), access }
  })

/** The running pod of a bottle's agent or proxy, found now (a pod may have been rescheduled since it was observed). */
export const runningPod = (access: KubeAccess, namespace: string, bottle: string, role: "agent" | "egress"): Effect.Effect<string, KubeError | string> =>
  access._tag !== "Ready"
    ? Effect.fail(access._tag === "Unusable" ? access.error : "no Kubernetes cluster is configured")
    : Effect.gen(function* () {
      const api = yield* KubeApi
      const pods = yield* api.list(POD, namespace, `${BL.bottle}=${bottle},${ROLE_LABEL}=${role}`)
      // The workload's own pod, not any pod someone labelled so: the agent's by its name (StatefulSet `<name>-0`,
      // Sandbox `<name>`), the proxy's by its owner (a ReplicaSet of its Deployment).
      const n = kubeNames(bottle)
      const owned = (p: (typeof pods)[number]) => {
        const owners = (p.metadata as { ownerReferences?: ReadonlyArray<{ kind?: string; name?: string }> }).ownerReferences ?? []
        return role === "agent"
          ? (p.metadata.name === `${n.agent}-0` && owners.some((o) => o.kind === "StatefulSet" && o.name === n.agent)) || (p.metadata.name === n.agent && owners.some((o) => o.kind === "Sandbox" && o.name === n.agent))
          : owners.some((o) => o.kind === "ReplicaSet" && (o.name ?? "").startsWith(`${n.egress}-`))
      }
      const running = pods.filter((p) => (p["status"] as { phase?: string } | undefined)?.phase === "Running" && !p.metadata.deletionTimestamp && owned(p))
      if (running.length === 0) return yield* Effect.fail(`bottle '${bottle}' has no running ${role} pod in namespace ${namespace}`)
      return running.map((p) => p.metadata.name).sort()[0]!
    }).pipe(Effect.provide(access.layer))
