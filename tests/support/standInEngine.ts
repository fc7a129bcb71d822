/** A stand-in Docker Engine on a unix socket, for the Engine clients' tests of broken and hostile answers. */
import { mkdtempSync } from "node:fs"
import { createServer, type Server, type ServerResponse } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseDockerHost, type Endpoint } from "../../src/observers/endpoint.js"

/** Serves `handler` on a fresh socket; the endpoint is what DOCKER_HOST would say. */
export const serve = async (handler: Parameters<typeof createServer>[1]): Promise<{ endpoint: Endpoint; server: Server }> => {
  const socketPath = join(mkdtempSync(join(tmpdir(), "bottle-engine-")), "docker.sock")
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(socketPath, r))
  return { endpoint: parseDockerHost(`unix://${socketPath}`) as Endpoint, server }
}

/** Stops the stand-in, dropping connections it left hanging on purpose. */
export const close = (server: Server) => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) })

/**
 * Answers with `status` and writes `chunk` (or that many spaces) again and
 * again, after `first`, for as long as the client reads: only the client's
 * limit ends the answer. `sent()` says how much was written.
 */
export const endless = (status: number, chunk: number | Buffer, first: Buffer = Buffer.alloc(0)) => {
  let sent = 0
  const body = typeof chunk === "number" ? Buffer.alloc(chunk, " ") : chunk
  const handler = (_req: unknown, res: ServerResponse) => {
    res.writeHead(status, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
    res.write(first)
    const pump = () => {
      for (let more = true; more && !res.destroyed; sent += body.length) more = res.write(body)
      if (!res.destroyed) res.once("drain", pump)
    }
    res.on("error", () => {})
    pump()
  }
  return { handler, sent: () => sent }
}
