/**
 * A thin Kubernetes API client for what the Kubernetes backend needs: discovery, LIST with a label selector,
 * server-side apply (fieldManager bottle, never forced), DELETE with a UID
 * precondition. Spoken with @effect/platform's HTTP client, answers decoded
 * with effect/Schema, every call bounded as a whole.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { KubeTarget } from "../resources/kubeconfig.js"
import { readBoundedText } from "./httpBody.js"

/** The most bottle reads of one answer. */
const MAX_BODY = 64 * 1024 * 1024
export const FIELD_MANAGER = "bottle"

export type KubeErrorReason = "NotFound" | "Conflict" | "Forbidden" | "Invalid" | "Unreachable" | "Timeout" | "Server" | "BadResponse"

export class KubeError extends Data.TaggedError("KubeError")<{
  readonly reason: KubeErrorReason
  readonly server: string
  readonly method: string
  readonly path: string
  readonly status?: number
  readonly detail: string
  /** For an apply refused over fields another manager owns: those managers. */
  readonly managers?: ReadonlyArray<string>
}> {
  override get message(): string {
    if (this.reason === "Unreachable") return `cannot reach the Kubernetes API at ${this.server}: ${this.detail}`
    if (this.reason === "Timeout") return `the Kubernetes API at ${this.server} did not answer ${this.method} ${this.path} within ${this.detail}`
    if (this.managers !== undefined && this.managers.length > 0) return `${this.method} ${this.path}: fields are owned by ${this.managers.map((m) => `'${m}'`).join(", ")} (bottle does not force an apply): ${this.detail}`
    return `${this.method} ${this.path}: ${this.status ?? ""} ${this.detail}`.replace(/ {2,}/g, " ")
  }
}

/** Where a kind lives in the API. */
export interface ResourceRef {
  readonly group: string
  readonly version: string
  readonly kind: string
  readonly plural: string
}

/** The kinds a bottle is made of (src/resources/realiseKubernetes.ts), and agent-sandbox's Sandbox. */
export const RESOURCES: ReadonlyArray<ResourceRef> = [
  { group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts" },
  { group: "", version: "v1", kind: "Secret", plural: "secrets" },
  { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps" },
  { group: "", version: "v1", kind: "Service", plural: "services" },
  { group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims" },
  { group: "apps", version: "v1", kind: "Deployment", plural: "deployments" },
  { group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets" },
  { group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies" },
  { group: "agents.x-k8s.io", version: "v1alpha1", kind: "Sandbox", plural: "sandboxes" }
]

/** Pods: listed to find a bottle's running pod (exec, logs), never applied. */
export const POD: ResourceRef = { group: "", version: "v1", kind: "Pod", plural: "pods" }

export const refOf = (apiVersion: string, kind: string): ResourceRef | undefined => {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") as [string, string] : ["", apiVersion]
  return [...RESOURCES, POD].find((r) => r.group === group && r.version === version && r.kind === kind)
}

const collectionPath = (r: ResourceRef, namespace: string) =>
  `${r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`}/namespaces/${encodeURIComponent(namespace)}/${r.plural}`

export const KubeMeta = Schema.Struct({
  name: Schema.String,
  namespace: Schema.optional(Schema.String),
  uid: Schema.String,
  resourceVersion: Schema.optional(Schema.String),
  labels: Schema.optional(Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.String }))),
  annotations: Schema.optional(Schema.NullishOr(Schema.Record({ key: Schema.String, value: Schema.String }))),
  deletionTimestamp: Schema.optional(Schema.NullishOr(Schema.String)),
  ownerReferences: Schema.optional(Schema.NullishOr(Schema.Array(Schema.Struct({ kind: Schema.optional(Schema.String), name: Schema.optional(Schema.String) }))))
})
const KubeObjectSchema = Schema.Struct({ apiVersion: Schema.optional(Schema.String), kind: Schema.optional(Schema.String), metadata: KubeMeta })
const KubeList = Schema.Struct({ items: Schema.NullishOr(Schema.Array(Schema.Unknown)) })
const Status = Schema.Struct({
  message: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String),
  details: Schema.optional(Schema.NullishOr(Schema.Struct({ causes: Schema.optional(Schema.NullishOr(Schema.Array(Schema.Struct({ message: Schema.optional(Schema.String) })))) })))
})
const Discovery = Schema.Struct({ resources: Schema.Array(Schema.Struct({ name: Schema.String, kind: Schema.String })) })

/** An object as the API returns it: its metadata checked, the rest as sent. */
export type KubeObject = typeof KubeObjectSchema.Type & { readonly [field: string]: unknown }

export interface KubeApiShape {
  readonly server: string
  /** Whether the API serves this group/version (a 404 is "no"; any other failure is an error). */
  readonly serves: (groupVersion: string) => Effect.Effect<ReadonlyArray<string>, KubeError>
  /** Whether the namespace exists (bottle never makes one). */
  readonly namespaceExists: (name: string) => Effect.Effect<boolean, KubeError>
  readonly list: (r: ResourceRef, namespace: string, labelSelector: string) => Effect.Effect<ReadonlyArray<KubeObject>, KubeError>
  readonly get: (r: ResourceRef, namespace: string, name: string) => Effect.Effect<KubeObject, KubeError>
  /** Server-side apply of one manifest, never forced: a conflict fails with the other managers named. */
  readonly apply: (manifest: { readonly apiVersion: string; readonly kind: string; readonly metadata: { readonly name: string; readonly namespace: string }; readonly [field: string]: unknown }) => Effect.Effect<KubeObject, KubeError>
  /** Deletes exactly the object of that UID: one made anew under the name since it was observed is left alone (Conflict). */
  readonly remove: (r: ResourceRef, namespace: string, name: string, uid: string) => Effect.Effect<void, KubeError>
}

export class KubeApi extends Context.Tag("bottle/KubeApi")<KubeApi, KubeApiShape>() {}

export interface KubeApiOptions {
  readonly target: KubeTarget
  readonly timeout: Duration.DurationInput
}

const reasonFor = (status: number): KubeErrorReason =>
  status === 404 ? "NotFound" : status === 409 ? "Conflict" : status === 401 || status === 403 ? "Forbidden" : status === 422 || status === 400 ? "Invalid" : "Server"

const make = (opts: KubeApiOptions) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const server = opts.target.server
    const fail = (method: string, path: string, reason: KubeErrorReason, detail: string, extra: { status?: number; managers?: ReadonlyArray<string> } = {}) =>
      new KubeError({ reason, server, method, path, detail, ...extra })
    const withAuth = (req: HttpClientRequest.HttpClientRequest) =>
      opts.target.token !== undefined ? HttpClientRequest.bearerToken(req, opts.target.token) : req

    const call = <A, I>(method: "GET" | "PATCH" | "DELETE", path: string, schema: Schema.Schema<A, I>, body?: { readonly type: string; readonly text: string }) =>
      Effect.gen(function* () {
        let req = withAuth(HttpClientRequest.make(method)(`${server}${path}`)).pipe(HttpClientRequest.setHeader("Accept", "application/json"))
        if (body !== undefined) req = HttpClientRequest.bodyText(req, body.text, body.type)
        const res = yield* client.execute(req).pipe(
          Effect.mapError((e) => fail(method, path, e._tag === "RequestError" ? "Unreachable" : "BadResponse", e.cause instanceof Error ? e.cause.message : e.message))
        )
        const text = yield* readBoundedText(res, MAX_BODY, (d) => fail(method, path, "BadResponse", d))
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        if (res.status < 200 || res.status >= 300) {
          const st = Either.getOrUndefined(Schema.decodeUnknownEither(Status)(json))
          const managers = [...new Set((st?.details?.causes ?? []).flatMap((c) => /conflict with "([^"]+)"/.exec(c.message ?? "")?.[1] ?? []))]
          return yield* Effect.fail(fail(method, path, reasonFor(res.status), st?.message ?? `HTTP ${res.status}`, { status: res.status, ...(managers.length > 0 ? { managers } : {}) }))
        }
        const decoded = Schema.decodeUnknownEither(schema)(json)
        if (Either.isLeft(decoded)) return yield* Effect.fail(fail(method, path, "BadResponse", `unexpected response: ${decoded.left.message.split("\n")[0]}`))
        return { value: decoded.right, json }
      }).pipe(Effect.timeoutFail({ duration: opts.timeout, onTimeout: () => fail(method, path, "Timeout", Duration.format(Duration.decode(opts.timeout))) }))

    const asObject = (json: unknown) => json as KubeObject

    return KubeApi.of({
      server,
      serves: (gv) => {
        const path = gv.includes("/") ? `/apis/${gv}` : `/api/${gv}`
        return call("GET", path, Discovery).pipe(
          Effect.map(({ value }) => value.resources.map((r) => r.kind)),
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed([] as ReadonlyArray<string>))
        )
      },
      namespaceExists: (name) =>
        call("GET", `/api/v1/namespaces/${encodeURIComponent(name)}`, KubeObjectSchema).pipe(
          Effect.as(true),
          Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false))
        ),
      list: (r, ns, selector) =>
        call("GET", `${collectionPath(r, ns)}?labelSelector=${encodeURIComponent(selector)}`, KubeList).pipe(
          Effect.flatMap(({ value, json }) => {
            const items = value.items ?? []
            for (const i of items) {
              const ok = Schema.decodeUnknownEither(KubeObjectSchema)(i)
              if (Either.isLeft(ok)) return Effect.fail(fail("GET", collectionPath(r, ns), "BadResponse", `unexpected item: ${ok.left.message.split("\n")[0]}`))
            }
            return Effect.succeed(((json as { items?: ReadonlyArray<unknown> }).items ?? []).map(asObject))
          })
        ),
      get: (r, ns, name) => call("GET", `${collectionPath(r, ns)}/${encodeURIComponent(name)}`, KubeObjectSchema).pipe(Effect.map(({ json }) => asObject(json))),
      apply: (m) => {
        const r = refOf(m.apiVersion, m.kind)
        if (r === undefined) return Effect.fail(fail("PATCH", m.kind, "Invalid", `bottle does not apply ${m.apiVersion} ${m.kind}`))
        const path = `${collectionPath(r, m.metadata.namespace)}/${encodeURIComponent(m.metadata.name)}?fieldManager=${FIELD_MANAGER}`
        // JSON is YAML: the apply-patch+yaml type takes it, as kubectl sends it.
        return call("PATCH", path, KubeObjectSchema, { type: "application/apply-patch+yaml", text: JSON.stringify(m) }).pipe(Effect.map(({ json }) => asObject(json)))
      },
      remove: (r, ns, name, uid) =>
        call("DELETE", `${collectionPath(r, ns)}/${encodeURIComponent(name)}`, Schema.Unknown, {
          type: "application/json",
          text: JSON.stringify({ kind: "DeleteOptions", apiVersion: "v1", preconditions: { uid }, propagationPolicy: "Background" })
        }).pipe(Effect.asVoid)
    })
  })

/** The live client: one keep-alive agent, trusting the cluster's CA and presenting the user's certificate, as the kubeconfig says. */
export const layer = (opts: KubeApiOptions): Layer.Layer<KubeApi> =>
  Layer.effect(KubeApi, make(opts)).pipe(
    Layer.provide(NodeHttpClient.layerWithoutAgent),
    Layer.provide(NodeHttpClient.makeAgentLayer({
      keepAlive: true,
      maxSockets: 16,
      ...(opts.target.ca !== undefined ? { ca: opts.target.ca } : {}),
      ...(opts.target.clientCert !== undefined ? { cert: opts.target.clientCert, key: opts.target.clientKey } : {}),
      rejectUnauthorized: !opts.target.insecureSkipTlsVerify
    }))
  )
