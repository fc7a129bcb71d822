/**
 * A FAKE Kubernetes API server, in-process, for tests: no real API server
 * can run on the CI machine. It speaks the part of the contract bottle
 * relies on, as the real one does: discovery; LIST with label selectors
 * (=, !=, exists, !exists); server-side apply (PATCH
 * application/apply-patch+yaml with fieldManager; a field another manager
 * set to another value is a 409 naming that manager unless forced); GET;
 * DELETE with a UID precondition; namespaces that must exist; a bearer
 * token; and injected faults (500, hang, an answer without end). It records every request. A
 * StatefulSet or Deployment applied gets one Running pod (and readyReplicas
 * 1), gone with it. A pod's exec (WebSocket, v5/v4.channel.k8s.io) runs the
 * command ON THE TEST HOST, as if in the pod; its log is `podLogs`' text.
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { spawn } from "node:child_process"
import { WebSocketServer, type WebSocket } from "ws"
import { parse } from "yaml"

interface Stored {
  obj: Record<string, any>
  /** Leaf field path (".spec.replicas") → the manager that set it. */
  owners: Map<string, string>
}

export interface FakeKubeRequest {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly contentType: string | undefined
}

export interface FakeKube {
  readonly url: string
  readonly requests: Array<FakeKubeRequest>
  readonly faults: Array<{ method: string; path: RegExp; fault: "500" | "hang" | "endless" }>
  readonly namespaces: Set<string>
  /** Serve agent-sandbox's API (agents.x-k8s.io/v1alpha1). */
  sandboxApi: boolean
  /** Applies as another field manager would (kubectl; forced, as `kubectl scale` or `--force-conflicts` takes a field over). */
  applyAs: (manager: string, obj: Record<string, any>, force?: boolean) => { status: number; body: any }
  objects: () => ReadonlyArray<Record<string, any>>
  /** Pod name → its log, as the log endpoint serves it. */
  readonly podLogs: Map<string, string>
  /**
   * How a bare pod bottle applies (verify's probe) runs: by default its command runs ON THE TEST HOST (which is
   * not fenced: a probe there finds its way out); a test may give its log instead.
   */
  runPod: ((pod: Record<string, any>) => string | undefined) | undefined
  /** Every exec asked: the pod, the container and the command. */
  readonly execs: Array<{ pod: string; container: string; command: ReadonlyArray<string>; protocol: string }>
  close: () => Promise<void>
}

const GROUPS: Record<string, Record<string, string>> = {
  "v1": { serviceaccounts: "ServiceAccount", secrets: "Secret", configmaps: "ConfigMap", services: "Service", persistentvolumeclaims: "PersistentVolumeClaim", pods: "Pod" },
  "apps/v1": { deployments: "Deployment", statefulsets: "StatefulSet" },
  "networking.k8s.io/v1": { networkpolicies: "NetworkPolicy" },
  "agents.x-k8s.io/v1alpha1": { sandboxes: "Sandbox" }
}

const leaves = (v: unknown, at = ""): Array<[string, unknown]> =>
  v !== null && typeof v === "object" && !Array.isArray(v)
    ? Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => leaves(x, `${at}.${k}`))
    : [[at, v]]

const valueAt = (obj: unknown, path: string): unknown =>
  path.split(".").slice(1).reduce<unknown>((o, k) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), obj)

const merge = (base: any, patch: any): any => {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch) || base === null || typeof base !== "object" || Array.isArray(base)) return patch
  const out: any = { ...base }
  for (const [k, v] of Object.entries(patch)) out[k] = merge(base[k], v)
  return out
}

const matches = (labels: Record<string, string>, selector: string): boolean =>
  selector.split(",").filter((s) => s !== "").every((term) => {
    const ne = /^([^!=]+)!=(.*)$/.exec(term)
    if (ne) return labels[ne[1]!] !== ne[2]
    const eq = /^([^!=]+)==?(.*)$/.exec(term)
    if (eq) return labels[eq[1]!] === eq[2]
    if (term.startsWith("!")) return !(term.slice(1) in labels)
    return term in labels
  })

export const startFakeKube = async (opts: { token?: string; namespaces?: ReadonlyArray<string> } = {}): Promise<FakeKube> => {
  const store = new Map<string, Stored>()
  const requests: Array<FakeKubeRequest> = []
  const faults: FakeKube["faults"] = []
  const namespaces = new Set(opts.namespaces ?? ["bottle-default"])
  let rv = 1000
  const status = (code: number, reason: string, message: string, causes?: ReadonlyArray<{ message: string; field?: string }>) =>
    ({ status: code, body: { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code, ...(causes ? { details: { causes } } : {}) } })

  const apply = (gv: string, plural: string, ns: string, name: string, obj: Record<string, any>, manager: string, force: boolean) => {
    const kind = GROUPS[gv]?.[plural]
    if (kind === undefined) return status(404, "NotFound", "the server could not find the requested resource")
    if (!namespaces.has(ns)) return status(404, "NotFound", `namespaces "${ns}" not found`)
    if (obj.kind !== kind || obj.apiVersion !== gv || obj.metadata?.name !== name) return status(400, "BadRequest", "the body does not name this object")
    if (obj.metadata?.namespace !== undefined && obj.metadata.namespace !== ns) return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
    const key = `${gv}/${plural}/${ns}/${name}`
    const cur = store.get(key)
    const fields = leaves(obj).filter(([p]) => !["apiVersion", "kind", "metadata.name", "metadata.namespace"].includes(p.slice(1)))
    if (cur !== undefined && !force) {
      const conflicts = fields.filter(([p, v]) => {
        const owner = cur.owners.get(p)
        return owner !== undefined && owner !== manager && JSON.stringify(valueAt(cur.obj, p)) !== JSON.stringify(v)
      })
      if (conflicts.length > 0) {
        return status(409, "Conflict", `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? "s" : ""}: ${conflicts.map(([p]) => `conflict with "${cur.owners.get(p)}": ${p}`).join("; ")}`,
          conflicts.map(([p]) => ({ message: `conflict with "${cur.owners.get(p)}"`, field: p })))
      }
    }
    const before = cur === undefined ? undefined : JSON.stringify(cur.obj)
    const next: Stored = cur ?? { obj: { apiVersion: gv, kind, metadata: { name, namespace: ns, uid: randomUUID(), creationTimestamp: new Date().toISOString() } }, owners: new Map() }
    // Fields this manager set before and no longer sends are its to drop.
    for (const [p, owner] of [...next.owners]) {
      if (owner === manager && !fields.some(([q]) => q === p)) next.owners.delete(p)
    }
    const meta = next.obj.metadata
    next.obj = merge(next.obj, obj)
    next.obj.metadata = { ...next.obj.metadata, uid: meta.uid, creationTimestamp: meta.creationTimestamp }
    for (const [p] of fields) next.owners.set(p, manager)
    if (before !== JSON.stringify(next.obj)) next.obj.metadata.resourceVersion = String(++rv)
    next.obj.metadata.managedFields = [...new Set(next.owners.values())].map((m) => ({ manager: m, operation: "Apply" }))
    store.set(key, next)
    // The server gives a Service its address.
    if (kind === "Service" && next.obj.spec !== undefined && next.obj.spec.clusterIP === undefined) next.obj.spec.clusterIP = `10.96.${(rv >> 8) & 255}.${rv & 255}`
    if (kind === "Pod" && cur === undefined) {
      next.obj.status = { phase: "Running" }
      const given = fake.runPod?.(next.obj)
      const finish = (log: string, ok: boolean) => {
        podLogs.set(name, log)
        next.obj.status = { phase: ok ? "Succeeded" : "Failed" }
      }
      if (given !== undefined) finish(given, true)
      else {
        const command: Array<string> = next.obj.spec?.containers?.[0]?.command ?? []
        const child = spawn(command[0] ?? "false", command.slice(1), { stdio: ["ignore", "pipe", "ignore"] })
        let out = ""
        child.stdout.on("data", (d: Buffer) => { out += d })
        child.on("error", () => finish("", false))
        child.on("close", (code) => finish(out, code === 0))
      }
    }
    if (kind === "StatefulSet" || kind === "Deployment" || kind === "Sandbox") {
      // The controllers: one pod, Running and ready (agent-sandbox names it after the Sandbox).
      next.obj.status = kind === "Sandbox" ? { replicas: 1, conditions: [{ type: "Ready", status: "True" }] } : { replicas: 1, readyReplicas: 1 }
      const podName = kind === "StatefulSet" ? `${name}-0` : kind === "Sandbox" ? name : `${name}-5d9c7f-x2x7q`
      const template = kind === "Sandbox" ? next.obj.spec?.podTemplate : next.obj.spec?.template
      // A Deployment's pods are its ReplicaSet's, as the real controllers have them.
      const owner = kind === "Deployment" ? { kind: "ReplicaSet", name: `${name}-5d9c7f` } : { kind, name }
      store.set(`v1/pods/${ns}/${podName}`, { obj: { apiVersion: "v1", kind: "Pod", metadata: { name: podName, namespace: ns, uid: randomUUID(), labels: template?.metadata?.labels ?? {}, ownerReferences: [owner] }, spec: template?.spec ?? {}, status: { phase: "Running" } }, owners: new Map() })
    }
    return { status: cur === undefined ? 201 : 200, body: next.obj }
  }

  const podLogs = new Map<string, string>()
  const execs: FakeKube["execs"] = []
  const handle = (req: IncomingMessage, body: string): { status: number; body: unknown; text?: boolean } | "hang" | "endless" => {
    const url = new URL(req.url ?? "/", "http://fake")
    const r: FakeKubeRequest = { method: req.method ?? "GET", path: url.pathname, query: url.searchParams, contentType: req.headers["content-type"] }
    requests.push(r)
    const fault = faults.find((f) => f.method === r.method && f.path.test(url.pathname + url.search))
    if (fault?.fault === "hang" || fault?.fault === "endless") return fault.fault
    if (fault?.fault === "500") return status(500, "InternalError", "injected fault")
    if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) return status(401, "Unauthorized", "Unauthorized")
    // Discovery.
    const disc = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(url.pathname)
    if (disc && r.method === "GET") {
      const gv = disc[1] ?? disc[2]!
      if (GROUPS[gv] === undefined || (gv.startsWith("agents.x-k8s.io") && !fake.sandboxApi)) return status(404, "NotFound", "the server could not find the requested resource")
      return { status: 200, body: { kind: "APIResourceList", groupVersion: gv, resources: Object.entries(GROUPS[gv]!).map(([name, kind]) => ({ name, kind, namespaced: true })) } }
    }
    const nsGet = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname)
    if (nsGet && r.method === "GET") {
      const ns = decodeURIComponent(nsGet[1]!)
      return namespaces.has(ns) ? { status: 200, body: { kind: "Namespace", apiVersion: "v1", metadata: { name: ns, uid: `ns-${ns}` } } } : status(404, "NotFound", `namespaces "${ns}" not found`)
    }
    const log = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(url.pathname)
    if (log && r.method === "GET") {
      const pod = store.get(`v1/pods/${decodeURIComponent(log[1]!)}/${decodeURIComponent(log[2]!)}`)
      if (pod === undefined) return status(404, "NotFound", `pods "${log[2]}" not found`)
      return { status: 200, body: podLogs.get(pod.obj.metadata.name) ?? "", text: true }
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(url.pathname)
    if (!m) return status(404, "NotFound", "the server could not find the requested resource")
    const gv = m[1] ?? m[2]!
    const [ns, plural, name] = [decodeURIComponent(m[3]!), m[4]!, m[5] !== undefined ? decodeURIComponent(m[5]) : undefined]
    if (GROUPS[gv]?.[plural] === undefined || (gv.startsWith("agents.x-k8s.io") && !fake.sandboxApi)) return status(404, "NotFound", "the server could not find the requested resource")
    const key = `${gv}/${plural}/${ns}/${name}`
    if (r.method === "GET" && name === undefined) {
      const selector = url.searchParams.get("labelSelector") ?? ""
      const items = [...store.entries()].filter(([k, s]) => k.startsWith(`${gv}/${plural}/${ns}/`) && matches(s.obj.metadata.labels ?? {}, selector)).map(([, s]) => s.obj)
      return { status: 200, body: { kind: `${GROUPS[gv]![plural]}List`, apiVersion: gv, metadata: { resourceVersion: String(rv) }, items } }
    }
    if (r.method === "GET") {
      const s = store.get(key)
      return s ? { status: 200, body: s.obj } : status(404, "NotFound", `${plural} "${name}" not found`)
    }
    if (r.method === "PATCH" && name !== undefined) {
      if (r.contentType !== "application/apply-patch+yaml") return status(415, "UnsupportedMediaType", `the body of the request was in an unknown format: ${r.contentType}`)
      const manager = url.searchParams.get("fieldManager")
      if (!manager) return status(400, "BadRequest", "fieldManager is required for apply requests")
      let obj: Record<string, any>
      try { obj = parse(body) } catch { return status(400, "BadRequest", "the body is not YAML") }
      return apply(gv, plural, ns, name, obj, manager, url.searchParams.get("force") === "true")
    }
    if (r.method === "DELETE" && name !== undefined) {
      const s = store.get(key)
      if (!s) return status(404, "NotFound", `${plural} "${name}" not found`)
      const uid = body ? (JSON.parse(body) as { preconditions?: { uid?: string } }).preconditions?.uid : undefined
      if (uid !== undefined && uid !== s.obj.metadata.uid) {
        return status(409, "Conflict", `Operation cannot be fulfilled on ${plural} "${name}": Precondition failed: UID in precondition: ${uid}, UID in object meta: ${s.obj.metadata.uid}`)
      }
      store.delete(key)
      for (const [k, p] of [...store]) {
        if (p.obj.kind === "Pod" && p.obj.metadata.namespace === ns && p.obj.metadata.ownerReferences?.some((o: { name: string; kind: string }) =>
          (o.name === name && o.kind === s.obj.kind) || (s.obj.kind === "Deployment" && o.kind === "ReplicaSet" && o.name.startsWith(`${name}-`)))) store.delete(k)
      }
      return { status: 200, body: { kind: "Status", status: "Success" } }
    }
    return status(405, "MethodNotAllowed", "method not allowed")
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ""
    req.on("data", (d) => { body += d })
    req.on("end", () => {
      const out = handle(req, body)
      if (out === "hang") return
      if (out === "endless") {
        // JSON that never ends, as fast as the client reads it, until it hangs up.
        res.writeHead(200, { "Content-Type": "application/json" })
        const chunk = Buffer.alloc(64 * 1024, 0x20)
        const more = () => { while (!res.destroyed && res.write(chunk)) { /* until the socket pushes back */ } }
        res.write("{\"items\": [")
        res.on("drain", more)
        more()
        return
      }
      res.writeHead(out.status, { "Content-Type": out.text === true ? "text/plain" : "application/json" })
      res.end(out.text === true ? String(out.body) : JSON.stringify(out.body))
    })
  })
  // exec: a WebSocket upgrade on the pod's exec path; the command runs here, on the test host.
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has("v5.channel.k8s.io") ? "v5.channel.k8s.io" : offered.has("v4.channel.k8s.io") ? "v4.channel.k8s.io" : false) })
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://fake")
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/.exec(url.pathname)
    requests.push({ method: "GET", path: url.pathname, query: url.searchParams, contentType: undefined })
    const pod = m ? store.get(`v1/pods/${decodeURIComponent(m[1]!)}/${decodeURIComponent(m[2]!)}`) : undefined
    if ((opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) || pod === undefined) {
      socket.end(`HTTP/1.1 ${pod === undefined ? "404 Not Found" : "401 Unauthorized"}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ kind: "Status", message: pod === undefined ? "pods not found" : "Unauthorized" })}`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const command = url.searchParams.getAll("command")
      execs.push({ pod: pod.obj.metadata.name, container: url.searchParams.get("container") ?? "", command, protocol: ws.protocol })
      const child = spawn(command[0]!, command.slice(1), { stdio: ["pipe", "pipe", "pipe"] })
      const frame = (channel: number, data: Buffer | string) => ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]))
      child.stdout.on("data", (d: Buffer) => frame(1, d))
      child.stderr.on("data", (d: Buffer) => frame(2, d))
      child.on("error", (e) => { frame(3, JSON.stringify({ status: "Failure", message: e.message })); ws.close() })
      child.on("close", (code) => {
        frame(3, JSON.stringify(code === 0 ? { status: "Success" } : { status: "Failure", reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: String(code) }] } }))
        ws.close()
      })
      ws.on("message", (data: Buffer) => {
        if (data[0] === 0) child.stdin.write(data.subarray(1))
        else if (data[0] === 255 && data[1] === 0) child.stdin.end()
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const fake: FakeKube = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    faults,
    namespaces,
    sandboxApi: false,
    applyAs: (manager, obj, force = false) => {
      const gv = obj.apiVersion as string
      const plural = Object.entries(GROUPS[gv] ?? {}).find(([, k]) => k === obj.kind)?.[0] ?? "?"
      return apply(gv, plural, obj.metadata.namespace, obj.metadata.name, obj, manager, force)
    },
    objects: () => [...store.values()].map((s) => s.obj).filter((o) => o.kind !== "Pod"),
    podLogs,
    runPod: undefined,
    execs,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
  return fake
}
