/**
 * Observes bottle's objects on a Kubernetes cluster: in each namespace a
 * bottle is (or was) in, one LIST per kind with bottle's label selector,
 * whatever the number of bottles; whether each namespace exists; whether the
 * cluster serves agent-sandbox. Any failed call makes the whole snapshot
 * failed: a partial list would read as "gone" and could be pruned.
 */
import * as Effect from "effect/Effect"
import { Bottle as BL, MANAGED_BY } from "../resources/labels.js"
import type { KubeSnapshot, ObservedObject, Source } from "../resources/observed.js"
import { ROLE_LABEL } from "../resources/realiseKubernetes.js"
import { KubeApi, POD, RESOURCES, type KubeObject, type ResourceRef } from "./KubeApi.js"

export const SANDBOX_GROUP_VERSION = "agents.x-k8s.io/v1alpha1"
const SELECTOR = `${BL.managedBy}=${MANAGED_BY}`
/** Pods bottle makes itself: verify's probes (a run cut off may leave one). */
const PROBES = `${SELECTOR},${ROLE_LABEL}=probe`

/** An object as the API listed it, as bottle observes it: the kind it was listed as, its namespace, the rest as the body. */
export const asObserved = (o: KubeObject, r: ResourceRef, namespace: string): ObservedObject => {
  const { apiVersion: _a, kind: _k, metadata, ...body } = o
  return {
    apiVersion: r.group === "" ? r.version : `${r.group}/${r.version}`,
    kind: r.kind,
    namespace: metadata.namespace ?? namespace,
    name: metadata.name,
    uid: metadata.uid,
    labels: metadata.labels ?? {},
    annotations: metadata.annotations ?? {},
    deleting: metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null,
    body
  }
}

export const observeKube = (namespaces: ReadonlyArray<string>, context: string) =>
  Effect.gen(function* () {
    const api = yield* KubeApi
    const sandboxApi = (yield* api.serves(SANDBOX_GROUP_VERSION)).includes("Sandbox")
    const kinds = RESOURCES.filter((r) => sandboxApi || r.kind !== "Sandbox")
    const exists = yield* Effect.forEach(namespaces, (ns) => api.namespaceExists(ns), { concurrency: 8 })
    const lists = yield* Effect.forEach(
      namespaces.filter((_, i) => exists[i]).flatMap((ns) => [...kinds, POD].map((r) => ({ ns, r }))),
      ({ ns, r }) => api.list(r, ns, r === POD ? PROBES : SELECTOR).pipe(
        Effect.map((items) => items.map((o) => asObserved(o, r, ns)))
      ),
      { concurrency: 8 }
    )
    return {
      context,
      server: api.server,
      namespaces: namespaces.map((name, i) => ({ name, exists: exists[i]! })),
      objects: lists.flat(),
      sandboxApi,
      listed: kinds.map((r) => (r.group === "" ? r.kind : `${r.kind}.${r.group}`))
    } satisfies KubeSnapshot
  })

/** The snapshot as a source: a failure names the cluster and what failed. */
export const kubeSource = (namespaces: ReadonlyArray<string>, context: string): Effect.Effect<Source<KubeSnapshot>, never, KubeApi> =>
  observeKube(namespaces, context).pipe(
    Effect.map((value): Source<KubeSnapshot> => ({ _tag: "Ok", value })),
    Effect.catchAll((e) => Effect.succeed<Source<KubeSnapshot>>({ _tag: "Failed", source: `kubernetes (context ${context})`, error: e.message }))
  )
