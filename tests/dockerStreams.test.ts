/**
 * The exec client's small JSON calls against a stand-in Engine: an answer
 * without end, or one that trickles in, fails the exec within its bound
 * instead of filling bottle's memory or hanging it. And following a log for
 * one line (a proxy saying it is ready): from the time asked, ended by the
 * line, by the log's end or by the bound, whatever the Engine sends.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Writable } from "node:stream"
import { awaitLogLine, execAttached } from "../src/observers/DockerStreams.js"
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

/** One frame of the Engine's multiplexed log stream. */
const frame = (stream: 1 | 2, text: string) => {
  const body = Buffer.from(text)
  const head = Buffer.alloc(8)
  head[0] = stream
  head.writeUInt32BE(body.length, 4)
  return Buffer.concat([head, body])
}
const isReady = (line: string) => line.includes('"event": "ready"')

describe("following a log for one line", () => {
  it.live("asks from the time given, and ends at the wanted line, across frames and streams", () =>
    Effect.gen(function* () {
      let asked = ""
      const { endpoint, server } = yield* Effect.promise(() => serve((req, res) => {
        asked = req.url ?? ""
        res.writeHead(200, { "Content-Type": "application/vnd.docker.raw-stream" })
        res.write(frame(2, "starting\n"))
        res.write(frame(1, '{"event": '))
        setTimeout(() => res.write(frame(1, '"ready"}\n')), 50)
      }))
      const r = yield* awaitLogLine(endpoint, "p1", "1700000000.123000000", isReady, 10_000).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(r).toEqual({ outcome: "seen", last: ["starting", '{"event": "ready"}'] })
      const q = new URL(asked, "http://x").searchParams
      expect([q.get("since"), q.get("follow"), q.get("stdout"), q.get("stderr")]).toEqual(["1700000000.123000000", "true", "true", "true"])
    }), 30_000)

  it.live("a log that ends without the line says so, with its last lines", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(200)
        res.end(frame(2, "Traceback (most recent call last):\nOSError: address in use\n"))
      }))
      const r = yield* awaitLogLine(endpoint, "p1", "0", isReady, 10_000).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(r).toEqual({ outcome: "ended", last: ["Traceback (most recent call last):", "OSError: address in use"] })
    }), 30_000)

  it.live("a line without end is held at 64 KiB, and the wait ends at its bound", () =>
    Effect.gen(function* () {
      let sent = 0
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(200)
        const chunk = frame(1, "x".repeat(60_000))
        const pump = () => {
          for (let more = true; more && !res.destroyed; sent += chunk.length) more = res.write(chunk)
          if (!res.destroyed) res.once("drain", pump)
        }
        res.on("error", () => {})
        pump()
      }))
      const before = process.memoryUsage().heapUsed
      const started = Date.now()
      const r = yield* awaitLogLine(endpoint, "p1", "0", isReady, 1_500).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(r.outcome).toBe("timeout")
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(sent).toBeGreaterThan(16 * 1024 * 1024)
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(32 * 1024 * 1024)
    }), 30_000)

  it.live("an Engine that refuses to read the log fails the wait with its reason", () =>
    Effect.gen(function* () {
      const { endpoint, server } = yield* Effect.promise(() => serve((_req, res) => {
        res.writeHead(501, { "Content-Type": "application/json" })
        res.end(JSON.stringify({ message: "configured logging driver does not support reading" }))
      }))
      const e = yield* Effect.flip(awaitLogLine(endpoint, "p1", "0", isReady, 10_000)).pipe(Effect.ensuring(Effect.promise(() => close(server))))
      expect(e.message).toContain("configured logging driver does not support reading")
    }), 30_000)
})
