/**
 * What streams on the Kubernetes API: `exec` (a WebSocket speaking
 * v4.channel.k8s.io: each message is one channel byte, then data; 0 stdin,
 * 1 stdout, 2 stderr, 3 the command's status, 4 terminal size) and a pod's
 * log (a chunked GET). The caller's stdio is attached as given.
 */
import { request as httpRequest, type IncomingMessage } from "node:http"
import { request as httpsRequest } from "node:https"
import type { Readable, Writable } from "node:stream"
import * as Effect from "effect/Effect"
import type { KubeTarget } from "../resources/kubeconfig.js"
import { KubeError } from "./KubeApi.js"

export interface KubeExecIo {
  readonly stdin: Readable | undefined
  readonly stdout: Writable
  readonly stderr: Writable
  readonly size?: () => { readonly rows: number; readonly columns: number }
  readonly onResize?: (listener: () => void) => () => void
}

const tls = (t: KubeTarget) => ({
  ...(t.ca !== undefined ? { ca: t.ca } : {}),
  ...(t.clientCert !== undefined ? { cert: t.clientCert, key: t.clientKey } : {}),
  rejectUnauthorized: !t.insecureSkipTlsVerify,
  headers: t.token !== undefined ? { Authorization: `Bearer ${t.token}` } : {}
})

/** The command's exit code from its status message (channel 3): Success is 0, NonZeroExitCode names it. */
export const exitCodeOf = (status: string): number | string => {
  let s: { status?: string; reason?: string; message?: string; details?: { causes?: ReadonlyArray<{ reason?: string; message?: string }> } }
  try {
    s = JSON.parse(status)
  } catch {
    return `unreadable exec status: ${status.slice(0, 200)}`
  }
  if (s.status === "Success") return 0
  const code = s.details?.causes?.find((c) => c.reason === "ExitCode")?.message
  if (s.reason === "NonZeroExitCode" && code !== undefined && /^[0-9]+$/.test(code)) return Number(code)
  return s.message ?? "the command failed to run"
}

export const kubeExec = (
  t: KubeTarget,
  pod: { readonly namespace: string; readonly name: string; readonly container: string },
  opts: { readonly command: ReadonlyArray<string>; readonly interactive: boolean; readonly tty: boolean },
  io: KubeExecIo
): Effect.Effect<number, KubeError> =>
  // The WebSocket library (and zlib under it) loads on the first exec, not at every start.
  Effect.promise(() => import("ws")).pipe(Effect.flatMap(({ default: WebSocket }) => Effect.async<number, KubeError>((resume) => {
    const q = new URLSearchParams({ container: pod.container, stdout: "true", stderr: String(!opts.tty), stdin: String(opts.interactive), tty: String(opts.tty) })
    for (const c of opts.command) q.append("command", c)
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/exec`
    const fail = (detail: string, status?: number) =>
      new KubeError({ reason: status === 404 ? "NotFound" : status === 403 || status === 401 ? "Forbidden" : "Server", server: t.server, method: "GET", path, detail, ...(status !== undefined ? { status } : {}) })
    // v5 (Kubernetes 1.30+) can close stdin alone; v4 is what older servers speak.
    const ws = new WebSocket(`${t.server.replace(/^http/, "ws")}${path}?${q.toString()}`, ["v5.channel.k8s.io", "v4.channel.k8s.io"], tls(t))
    let status: string | undefined
    let done = false
    const finish = (r: Effect.Effect<number, KubeError>) => {
      if (done) return
      done = true
      clearInterval(heartbeat)
      stopResizing()
      io.stdin?.pause()
      resume(r)
    }
    let stopResizing = () => {}
    // A quiet session is kept alive through load balancers that cut idle connections.
    const heartbeat = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.ping() }, 30_000)
    heartbeat.unref()
    const send = (channel: number, data: Buffer | string) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]))
    }
    ws.on("unexpected-response", (_req, res: IncomingMessage) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => {
        let detail = Buffer.concat(chunks).toString("utf8").trim()
        try {
          detail = (JSON.parse(detail) as { message?: string }).message ?? detail
        } catch { /* as sent */ }
        finish(Effect.fail(fail(detail || `HTTP ${res.statusCode}`, res.statusCode)))
      })
    })
    ws.on("open", () => {
      if (opts.tty && io.size !== undefined) {
        const resize = () => {
          const s = io.size!()
          send(4, JSON.stringify({ Width: s.columns, Height: s.rows }))
        }
        resize()
        if (io.onResize !== undefined) stopResizing = io.onResize(resize)
      }
      if (opts.interactive && io.stdin !== undefined) {
        if (ws.protocol !== "v5.channel.k8s.io" && !opts.tty) {
          io.stderr.write("warning: this API server speaks v4.channel.k8s.io, which cannot pass on the end of stdin: a command that reads to its end will not see it (Kubernetes 1.30 and later can)\n")
        }
        io.stdin.on("data", (c: Buffer) => send(0, c))
        // End of input is passed on where the protocol can say it (v5's close message); v4 cannot.
        io.stdin.on("end", () => { if (ws.protocol === "v5.channel.k8s.io") send(255, Buffer.from([0])) })
        io.stdin.resume()
      }
    })
    ws.on("message", (data: Buffer) => {
      if (data.length === 0) return
      const body = data.subarray(1)
      if (data[0] === 1) io.stdout.write(body)
      else if (data[0] === 2) io.stderr.write(body)
      else if (data[0] === 3) status = (status ?? "") + body.toString("utf8")
    })
    ws.on("error", (e) => finish(Effect.fail(fail(e.message))))
    ws.on("close", () => {
      if (status === undefined) return finish(Effect.fail(fail("the stream closed without the command's status")))
      const code = exitCodeOf(status)
      finish(typeof code === "number" ? Effect.succeed(code) : Effect.fail(fail(code)))
    })
    return Effect.sync(() => ws.terminate())
  })))

/** Writes a pod container's log as the API sends it; with `follow`, until the pod ends or the command is interrupted. */
export const kubeLogs = (
  t: KubeTarget,
  pod: { readonly namespace: string; readonly name: string; readonly container: string },
  opts: { readonly follow: boolean; readonly tail?: string | undefined; readonly since?: string | undefined },
  out: Writable
): Effect.Effect<void, KubeError> =>
  Effect.async<void, KubeError>((resume) => {
    const q = new URLSearchParams({ container: pod.container, follow: String(opts.follow) })
    if (opts.tail !== undefined && opts.tail !== "all") q.set("tailLines", opts.tail)
    if (opts.since !== undefined) q.set("sinceTime", opts.since)
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/log?${q.toString()}`
    const url = new URL(`${t.server}${path}`)
    const { headers, ...tlsOpts } = tls(t)
    const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, { method: "GET", headers, ...(url.protocol === "https:" ? tlsOpts : {}) }, (res) => {
      if ((res.statusCode ?? 500) >= 300) {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => resume(Effect.fail(new KubeError({ reason: res.statusCode === 404 ? "NotFound" : "Server", server: t.server, method: "GET", path, status: res.statusCode ?? 0, detail: Buffer.concat(chunks).toString("utf8").slice(0, 500) }))))
        return
      }
      res.on("data", (c: Buffer) => out.write(c))
      res.on("end", () => resume(Effect.void))
      res.on("error", (e) => resume(Effect.fail(new KubeError({ reason: "Unreachable", server: t.server, method: "GET", path, detail: e.message }))))
    })
    req.on("error", (e) => resume(Effect.fail(new KubeError({ reason: "Unreachable", server: t.server, method: "GET", path, detail: e.message }))))
    req.end()
    return Effect.sync(() => req.destroy())
  })
