/**
 * A test-only proxy in front of the Docker socket that forwards every request
 * unchanged, except those matching a rule: answered with a 500, or never
 * answered at all. Listens on 127.0.0.1; point DOCKER_HOST at `endpoint`.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export interface FaultRule {
  readonly method?: string
  /** Matched against the request path, query included. */
  readonly path: RegExp
  readonly fault: "500" | "hang"
}

export interface FaultProxy {
  readonly endpoint: string
  rules: Array<FaultRule>
  /** Requests seen, as `METHOD path`. */
  readonly seen: Array<string>
  readonly close: () => Promise<void>
}

export const startFaultProxy = async (socketPath = "/var/run/docker.sock"): Promise<FaultProxy> => {
  const seen: Array<string> = []
  const hanging = new Set<ServerResponse>()
  const proxy: FaultProxy = {
    endpoint: "",
    rules: [],
    seen,
    close: async () => {
      for (const r of hanging) r.destroy()
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`)
    const rule = proxy.rules.find((r) => (r.method === undefined || r.method === req.method) && r.path.test(req.url ?? ""))
    if (rule?.fault === "hang") { hanging.add(res); return }
    if (rule?.fault === "500") {
      res.writeHead(500, { "content-type": "application/json" })
      res.end(JSON.stringify({ message: "injected fault: the engine refused this request" }))
      return
    }
    const upstream = request({ socketPath, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on("error", (e) => { res.writeHead(502); res.end(JSON.stringify({ message: String(e) })) })
    req.pipe(upstream)
  })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  Object.assign(proxy, { endpoint: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}` })
  return proxy
}
