/**
 * The exec client's small JSON calls against a stand-in Engine: an answer
 * without end, or one that trickles in, fails the exec within its bound
 * instead of filling bottle's memory or hanging it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Writable } from "node:stream"
import { execAttached } from "../src/observers/DockerStreams.js"
import { parseDockerHost, type Endpoint } from "../src/observers/endpoint.js"

const serve = async (handler: Parameters<typeof createServer>[1]): Promise<{ endpoint: Endpoint; server: Server }> => {
  const socketPath = join(mkdtempSync(join(tmpdir(), "bottle-streams-")), "docker.sock")
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(socketPath, r))
  return { endpoint: parseDockerHost(`unix://${socketPath}`) as Endpoint, server }
}
const close = (server: Server) => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) })
const sink = () => new Writable({ write: (_c, _e, done) => done() })
const exec = (endpoint: Endpoint, timeoutMs: number) =>
  execAttached(endpoint, "c1", { cmd: ["true"], tty: false, interactive: false }, { stdin: undefined, stdout: sink(), stderr: sink() }, timeoutMs)

describe("exec client", () => {
  it.live("an exec-create answer without end is refused past 1 MiB, not held", () =>
    Effect.gen(function* () {
      let sent = 0
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(201, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        const chunk = Buffer.alloc(64 * 1024, " ")
        const pump = () => {
          while (!res.destroyed && res.write(chunk)) sent += chunk.length
          if (!res.destroyed) res.once("drain", pump)
        }
        res.on("error", () => {})
        pump()
      }))
      const error = yield* Effect.flip(exec(endpoint, 30_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(error.message).toContain("larger than 1048576 bytes")
      expect(sent).toBeLessThan(16 * 1024 * 1024)
    }), 30_000)

  it.live("an exec-create answer that trickles in without end fails within the call's bound", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(201, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" })
        const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write(" ")), 100)
        res.on("close", () => clearInterval(tick))
      }))
      const started = Date.now()
      const error = yield* Effect.flip(exec(endpoint, 1_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(error.message).toContain("no whole answer within 1s")
      expect(Date.now() - started).toBeLessThan(5_000)
    }), 30_000)
})
