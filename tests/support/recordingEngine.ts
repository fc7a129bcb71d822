/**
 * A test-only stand-in for the Docker Engine on a unix socket: it answers
 * what bottle asks while observing (an empty machine) and records every
 * request, so a test can say "this run changed nothing". Writes are answered
 * plausibly (a created id, 204) so a run that is allowed to go on ends on
 * its own instead of crashing on a missing answer; it creates nothing.
 * Point the CLI at it with `DOCKER_HOST=unix://<socketPath>`.
 */
import { randomBytes } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

export interface RecordingEngine {
  readonly socketPath: string
  /** Every request seen, as `METHOD /path?query`, in order. */
  readonly requests: ReadonlyArray<string>
  /** The requests that would change something on a real Engine (any POST or DELETE). */
  readonly writes: () => ReadonlyArray<string>
  /** When each request arrived and when its answer was sent (performance.now() ms), in order of arrival. */
  readonly spans: ReadonlyArray<readonly [number, number]>
  readonly close: () => Promise<void>
}

const API = "/v1.41"

const send = (res: ServerResponse, status: number, body?: unknown) => {
  if (body === undefined) {
    res.writeHead(status)
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const answer = (method: string, url: string, res: ServerResponse) => {
  const path = url.startsWith(API) ? url.slice(API.length).split("?")[0]! : url.split("?")[0]!
  if (method === "GET") {
    if (path === "/_ping") {
      res.writeHead(200, { "content-type": "text/plain", "api-version": "1.41" })
      res.end("OK")
      return
    }
    if (path === "/version") return send(res, 200, { Version: "24.0.0", ApiVersion: "1.41", Components: [{ Name: "Engine", Version: "24.0.0" }] })
    if (path === "/containers/json") return send(res, 200, [])
    if (path === "/networks") return send(res, 200, [])
    if (path === "/volumes") return send(res, 200, { Volumes: [] })
    if (path === "/images/json") return send(res, 200, [])
    if (/^\/containers\/[^/]+\/logs$/.test(path)) {
      res.writeHead(200, { "content-type": "application/vnd.docker.raw-stream", "content-length": 0 })
      res.end()
      return
    }
    return send(res, 404, { message: `no such object: ${path}` })
  }
  if (method === "POST") {
    if (path === "/containers/create" || path === "/networks/create") return send(res, 201, { Id: randomBytes(32).toString("hex") })
    if (/^\/containers\/[^/]+\/wait$/.test(path)) return send(res, 200, { StatusCode: 0 })
    if (path === "/images/create") {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(`${JSON.stringify({ status: "Downloaded newer image" })}\n`)
      return
    }
    return send(res, 204)
  }
  return send(res, 204)
}

export const startRecordingEngine = async (socketPath: string): Promise<RecordingEngine> => {
  const requests: Array<string> = []
  const spans: Array<[number, number]> = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? "?"
    const url = req.url ?? ""
    requests.push(`${method} ${url}`)
    const span: [number, number] = [performance.now(), Number.NaN]
    spans.push(span)
    res.on("finish", () => { span[1] = performance.now() })
    // The body is not needed, but must be read for the connection to be reused.
    req.resume()
    req.on("end", () => answer(method, url, res))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(socketPath, () => resolve())
  })
  return {
    socketPath,
    requests,
    spans,
    writes: () => requests.filter((r) => r.startsWith("POST ") || r.startsWith("DELETE ")),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
