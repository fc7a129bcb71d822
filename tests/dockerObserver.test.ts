/**
 * The Docker observer against a stand-in Engine: a snapshot is Ok only when
 * every call it makes answered. The Engine's version is asked beside the
 * lists; should it, or any list, fail, the observation is Failed, never an
 * empty machine (from which a prune would conclude nothing is running).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync } from "node:fs"
import { createServer, type ServerResponse } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { layer } from "../src/observers/DockerEngine.js"
import { dockerSource } from "../src/observers/dockerObserver.js"
import { parseDockerHost, type Endpoint } from "../src/observers/endpoint.js"

/** An empty Engine, but for the paths `failing` names, which answer 500. */
const observeWith = (failing: RegExp | undefined) =>
  Effect.gen(function* () {
    const socketPath = join(mkdtempSync(join(tmpdir(), "bottle-observer-")), "docker.sock")
    const answer = (res: ServerResponse, body: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body))
    const server = createServer((req, res) => {
      const path = (req.url ?? "").split("?")[0]!
      if (failing?.test(path)) return void res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ message: "injected fault" }))
      if (path.endsWith("/version")) return answer(res, { Version: "20.10.24", Components: [{ Name: "Engine", Version: "20.10.24" }] })
      if (path.endsWith("/volumes")) return answer(res, { Volumes: [] })
      answer(res, [])
    })
    yield* Effect.promise(() => new Promise<void>((r) => server.listen(socketPath, r)))
    return yield* dockerSource("obs").pipe(
      Effect.provide(layer({ endpoint: parseDockerHost(`unix://${socketPath}`) as Endpoint, timeout: "5 seconds", pullTimeout: "5 seconds" })),
      Effect.ensuring(Effect.promise(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) })))
    )
  })

describe("the Docker observer", () => {
  it.live("an Engine that answers everything is an Ok snapshot, with what it is", () =>
    Effect.gen(function* () {
      const s = yield* observeWith(undefined)
      expect(s._tag).toBe("Ok")
      if (s._tag === "Ok") {
        expect(s.value.engine).toEqual({ kind: "docker", version: "20.10.24" })
        expect(s.value.containers).toEqual([])
      }
    }))

  it.live("a failed version is a Failed observation, though every list answered", () =>
    Effect.gen(function* () {
      const s = yield* observeWith(/\/version$/)
      expect(s._tag).toBe("Failed")
      expect(s._tag === "Failed" && s.error).toContain("injected fault")
    }))

  it.live("a failed list is a Failed observation, though the version answered", () =>
    Effect.gen(function* () {
      const s = yield* observeWith(/\/networks$/)
      expect(s._tag).toBe("Failed")
      expect(s._tag === "Failed" && s.error).toContain("injected fault")
    }))
})
