/**
 * The exec client's small JSON calls against a stand-in Engine: an answer
 * without end, or one that trickles in, fails the exec within its bound
 * instead of filling bottle's memory or hanging it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Writable } from "node:stream"
import { execAttached } from "../src/observers/DockerStreams.js"
import type { Endpoint } from "../src/observers/endpoint.js"
import { close, endless, serve } from "./support/standInEngine.js"
const sink = () => new Writable({ write: (_c, _e, done) => done() })
const exec = (endpoint: Endpoint, timeoutMs: number) =>
  execAttached(endpoint, "c1", { cmd: ["true"], tty: false, interactive: false }, { stdin: undefined, stdout: sink(), stderr: sink() }, timeoutMs)

describe("exec client", () => {
  it.live("an exec-create answer without end is refused past 1 MiB, not held", () =>
    Effect.gen(function* () {
      const answer = endless(201, 64 * 1024)
      const { endpoint, server } = yield* Effect.promise(() => serve(answer.handler))
      const error = yield* Effect.flip(exec(endpoint, 30_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(error.message).toContain("larger than 1048576 bytes")
      expect(answer.sent()).toBeLessThan(16 * 1024 * 1024)
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
